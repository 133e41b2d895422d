// Canary split: #/split?service=NAME&window=300[&end_ms=]
//
// Configured weights (the VirtualService routes in force, as the proxies
// report them in weft_route_weight) beside the observed share per version
// (istio_requests_total by destination_version), the share over time,
// per-version RED side by side, and a verdict whose statistical test is
// stated on the page. All from /api/weft/split.
//
// DOM contract: tr.version-row[data-version][data-configured][data-observed]
// (percent, '' when unknown); #verdict[data-status].

import { getJson, list, num, str } from './api.js';
import { lineChart } from './charts.js';
import { hashWith, parseRange, rangeControls, rangeParams } from './controls.js';
import { h, message } from './dom.js';
import { fmtInt, fmtMs, fmtPercent, fmtRate } from './format.js';
import { stat } from './service.js';
import { buildHash, navigate } from './router.js';

const VERDICT_TEXT = {
  ok: ['healthy', 'No significant difference'],
  canary_worse: ['failure', 'Canary is significantly worse'],
  insufficient_data: ['idle', 'Not enough requests yet'],
  no_canary: ['idle', 'Only one version'],
};

function pct(v) {
  return v === null || v === undefined ? '—' : `${Number(v).toFixed(1)}%`;
}

export async function mountSplit(root, ctx) {
  const service = ctx.params.get('service') || '';
  const range = parseRange(ctx.params);
  ctx.setTitle(service ? `Split of ${service}` : 'Canary split');

  const select = h('select', { id: 'split-service', 'aria-label': 'Service' }, h('option', { value: '', text: 'Choose a service…' }));
  select.addEventListener('change', () => {
    if (select.value) navigate(buildHash('/split', { service: select.value, window: range.windowSecs }));
  });
  root.appendChild(
    h(
      'div',
      { class: 'toolbar' },
      h('h1', { class: 'view-title', text: 'Canary split' }),
      select,
      h('div', { class: 'toolbar-spacer' }),
      rangeControls(range, hashWith('/split', { service })),
    ),
  );
  const services = await getJson('/api/weft/services', null, ctx.signal);
  const apps = list(services.apps).filter((a) => list(a.versions).length > 0);
  for (const app of apps) {
    const name = str(app.app);
    const versions = list(app.versions).map(str).filter(Boolean);
    select.appendChild(h('option', { value: name, text: `${name} (${versions.join(', ') || 'no version'})`, selected: name === service }));
  }
  if (service && !apps.some((a) => a.app === service)) select.appendChild(h('option', { value: service, text: service, selected: true }));

  if (!service) {
    const multi = apps.filter((a) => list(a.versions).length > 1);
    root.appendChild(
      h(
        'section',
        { class: 'card' },
        message('empty', 'Pick a service', multi.length > 0 ? 'Services with more than one version:' : 'No service has more than one version in the last hour.'),
        h('ul', { class: 'link-list' }, multi.map((a) => h('li', null, h('a', { href: buildHash('/split', { service: a.app, window: range.windowSecs }), text: `${a.app}: ${list(a.versions).join(', ')}` })))),
      ),
    );
    ctx.setState('empty');
    return;
  }

  const data = await getJson('/api/weft/split', { service, ...rangeParams(range) }, ctx.signal);
  const versions = list(data.versions);
  if (versions.length === 0) {
    root.appendChild(h('section', { class: 'card' }, message('empty', `No traffic to ${service}`, 'No requests and no configured weights in this window.')));
    ctx.setState('empty');
    return;
  }

  // --- configured vs observed ---
  const rows = versions.map((v) =>
    h(
      'tr',
      {
        class: 'version-row',
        'data-version': str(v.version),
        'data-configured': v.configured_percent === null || v.configured_percent === undefined ? '' : Number(v.configured_percent).toFixed(2),
        'data-observed': v.observed_percent === null || v.observed_percent === undefined ? '' : Number(v.observed_percent).toFixed(2),
      },
      h('td', null, h('strong', { text: str(v.version) || '(no version)' })),
      h('td', { class: 'num', text: pct(v.configured_percent) }),
      h('td', { class: 'num', text: pct(v.observed_percent) }),
      h('td', null, shareBar(v.configured_percent, v.observed_percent)),
      h('td', { class: 'num', text: fmtInt(num(v.requests)) }),
      h('td', { class: 'num', text: fmtRate(num(v.rps)) }),
      h('td', { class: num(v.errors) > 0 ? 'num text-failure' : 'num', text: fmtPercent(num(v.error_rate)) }),
      h('td', { class: 'num', text: fmtMs(v.p50_ms) }),
      h('td', { class: 'num', text: fmtMs(v.p99_ms) }),
    ),
  );
  const table = h(
    'table',
    { class: 'table split-table' },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', { text: 'Version' }),
        ['Configured', 'Observed'].map((t) => h('th', { class: 'num', text: t })),
        h('th', { text: 'Configured (outline) vs observed (fill)' }),
        ['Requests', 'rps', 'Errors', 'p50', 'p99'].map((t) => h('th', { class: 'num', text: t })),
      ),
    ),
    h('tbody', null, rows),
  );
  const routes = list(data.routes);
  const routeText = routes.length === 0
    ? 'No weighted route reported by the proxies in this window (no VirtualService split in force).'
    : routes
        .map((r) => `${str(r.virtual_service)}${r.route ? ` route ${r.route}` : ''}: ${list(r.destinations).map((d) => `${d.subset || d.version} ${Number(d.weight_percent).toFixed(0)}%`).join(' / ')}`)
        .join('; ');

  // --- share over time ---
  const timeline = list(data.timeline);
  const names = versions.map((v) => str(v.version));
  const shareChart = lineChart({
    title: 'Observed share per version (%)',
    series: [
      ...names.map((name, index) => ({
        name: `${name} observed`,
        colour: index,
        points: timeline.map((p) => [num(p.t_ms), p.shares && p.shares[name] !== undefined ? Number(p.shares[name]) : num(p.requests) > 0 ? 0 : null]),
      })),
      ...versions
        .map((v, index) => ({ v, index }))
        .filter(({ v }) => v.configured_percent !== null && v.configured_percent !== undefined)
        .map(({ v, index }) => ({
          name: `${str(v.version)} configured`,
          colour: index,
          dashed: true,
          points: timeline.map((p) => [num(p.t_ms), Number(v.configured_percent)]),
        })),
    ],
    format: (v) => `${v.toFixed(0)}%`,
  });

  // --- verdict ---
  const verdict = data.verdict || {};
  const [health, title] = VERDICT_TEXT[verdict.status] || ['idle', str(verdict.status)];
  const errors = verdict.errors;
  const latency = verdict.latency;
  const verdictBox = h(
    'section',
    { class: `card verdict verdict-${health}`, id: 'verdict', 'data-status': str(verdict.status) },
    h('h2', null, h('span', { class: `badge health-${health}`, text: title }), verdict.canary ? ` canary ${verdict.canary} vs stable ${verdict.stable}` : ''),
    h('ul', null, list(verdict.summary).map((line) => h('li', { text: str(line) }))),
    h('h3', { text: 'How this is decided' }),
    h(
      'ul',
      { class: 'rules' },
      h('li', { text: `Both versions need at least ${fmtInt(num(verdict.min_requests))} requests in the window.` }),
      errors
        ? h('li', null, h('strong', { text: 'Error rate: ' }), str(errors.rule), ` Now: canary ${fmtPercent(num(errors.canary_error_rate))}, stable ${fmtPercent(num(errors.stable_error_rate))}, z = ${num(errors.z).toFixed(2)}, p = ${num(errors.p_value).toPrecision(3)} (α = ${num(errors.alpha)}).`)
        : h('li', { text: 'Error rate: one-sided two-proportion z-test on the error counts (pooled proportion), significant when p < α = 0.05.' }),
      latency
        ? h('li', null, h('strong', { text: 'Latency: ' }), str(latency.rule), ` Now: canary p99 ${fmtMs(latency.canary_p99_ms)}, stable p99 ${fmtMs(latency.stable_p99_ms)}, threshold ${fmtMs(latency.threshold_ms)}.`)
        : null,
    ),
  );

  // --- per-version RED side by side ---
  const cards = h(
    'div',
    { class: 'version-cards' },
    versions.map((v) =>
      h(
        'section',
        { class: 'card version-card', 'data-version': str(v.version) },
        h('h3', null, str(v.version) || '(no version)', verdict.canary === v.version ? h('span', { class: 'badge health-degraded', text: 'canary' }) : verdict.stable === v.version ? h('span', { class: 'badge health-healthy', text: 'stable' }) : null),
        h(
          'div',
          { class: 'stats' },
          stat('rps', fmtRate(num(v.rps))),
          stat('errors', fmtPercent(num(v.error_rate)), num(v.errors) > 0 ? 'text-failure' : ''),
          stat('p50', fmtMs(v.p50_ms)),
          stat('p99', fmtMs(v.p99_ms)),
        ),
        h(
          'div',
          { class: 'link-row' },
          h('a', { class: 'button small', href: buildHash(`/service/${encodeURIComponent(service)}`, { window: range.windowSecs }), text: 'RED charts' }),
          h('a', { class: 'button small', href: `${buildHash('/traces', { service })}&tag=${encodeURIComponent(`weft.destination.version=${v.version}`)}`, text: 'Traces' }),
        ),
      ),
    ),
  );

  root.append(
    verdictBox,
    h('section', { class: 'card split-card' }, h('h2', { class: 'card-title', text: `${service}: configured vs observed` }), h('p', { class: 'muted small', text: `In force: ${routeText}` }), table),
    h('section', { class: 'card chart-card' }, shareChart),
    cards,
  );
  ctx.setState('ready');
}

/** Two overlaid bars in one SVG: configured (outline) and observed (fill). */
function shareBar(configured, observed) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'share-bar');
  svg.setAttribute('viewBox', '0 0 100 14');
  svg.setAttribute('preserveAspectRatio', 'none');
  const rect = (cls, width, y, height) => {
    const r = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    r.setAttribute('class', cls);
    r.setAttribute('x', '0');
    r.setAttribute('y', String(y));
    r.setAttribute('width', String(Math.max(0, Math.min(100, width))));
    r.setAttribute('height', String(height));
    return r;
  };
  svg.appendChild(rect('share-track', 100, 0, 14));
  if (observed !== null && observed !== undefined) svg.appendChild(rect('share-observed', Number(observed), 3, 8));
  if (configured !== null && configured !== undefined) svg.appendChild(rect('share-configured', Number(configured), 1, 12));
  return svg;
}
