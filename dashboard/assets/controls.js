// Shared toolbar controls: the time window picker (last 5 m … 24 h) and the
// replay of a past window (`end_ms` in the URL), used by every metrics view.

import { h } from './dom.js';
import { fmtDateTime, fmtWindow } from './format.js';
import { buildHash } from './router.js';

export const WINDOWS = [300, 900, 1800, 3600, 10800, 21600, 43200, 86400];
export const DEFAULT_WINDOW = 300;

/** window (seconds) and end_ms (null: live) from the URL. */
export function parseRange(params) {
  const n = Number.parseInt(params.get('window') || '', 10);
  const windowSecs = Number.isFinite(n) && n >= 10 && n <= 7 * 86400 ? n : DEFAULT_WINDOW;
  const end = Number.parseInt(params.get('end_ms') || '', 10);
  return { windowSecs, endMs: Number.isFinite(end) && end > 0 ? end : null };
}

/** The API parameters of a range. */
export function rangeParams(range) {
  return range.endMs === null ? { window: range.windowSecs } : { window: range.windowSecs, end_ms: range.endMs };
}

function toLocalInput(ms) {
  const d = new Date(ms);
  const pad = (v) => String(v).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * The window picker plus a replay control. `hashFor(extra)` builds the hash of
 * the current view with the given range parameters.
 */
export function rangeControls(range, hashFor) {
  const picker = h(
    'div',
    { class: 'segmented', role: 'group', 'aria-label': 'Time window' },
    WINDOWS.map((w) =>
      h('a', {
        class: w === range.windowSecs ? 'seg active' : 'seg',
        href: hashFor({ window: w, end_ms: range.endMs }),
        'aria-current': w === range.windowSecs ? 'true' : null,
        'data-window': w,
        text: fmtWindow(w),
      }),
    ),
  );
  const endInput = h('input', {
    type: 'datetime-local',
    class: 'replay-input',
    'aria-label': 'Replay: window ending at',
    value: range.endMs === null ? '' : toLocalInput(range.endMs),
  });
  endInput.addEventListener('change', () => {
    const ms = new Date(endInput.value).getTime();
    if (Number.isFinite(ms)) window.location.hash = hashFor({ window: range.windowSecs, end_ms: ms });
  });
  const live = range.endMs === null
    ? h('span', { class: 'badge health-healthy live-badge', text: 'Live' })
    : h('a', { class: 'button small', href: hashFor({ window: range.windowSecs }), text: 'Back to live' });
  return h(
    'div',
    { class: 'range-controls' },
    h('span', { class: 'toolbar-label', text: 'Window' }),
    picker,
    h('span', { class: 'toolbar-label', text: 'Replay until' }),
    endInput,
    live,
    range.endMs === null ? null : h('span', { class: 'muted small', text: `replaying ${fmtWindow(range.windowSecs)} up to ${fmtDateTime(range.endMs * 1000).slice(0, 19)}` }),
  );
}

/** A hash builder for `path` keeping `keep` parameters. */
export function hashWith(path, keep) {
  return (extra) => buildHash(path, { ...keep, ...extra });
}
