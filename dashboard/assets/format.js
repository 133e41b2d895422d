// Number, time and duration formatting shared by the views.

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 12345 -> "12,345". */
export function fmtInt(n) {
  return integer.format(Number(n) || 0);
}

/** Requests per second, with precision that suits the magnitude. */
export function fmtRate(rps) {
  const r = Number(rps) || 0;
  if (r === 0) return '0';
  if (r < 0.01) return '<0.01';
  if (r < 10) return r.toFixed(2);
  if (r < 100) return r.toFixed(1);
  return integer.format(r);
}

/** A ratio 0..1 as a percentage: 0.0123 -> "1.23%". */
export function fmtPercent(ratio) {
  const p = (Number(ratio) || 0) * 100;
  if (p === 0) return '0%';
  if (p < 0.01) return '<0.01%';
  if (p < 10) return `${p.toFixed(2).replace(/\.?0+$/, '')}%`;
  return `${p.toFixed(1).replace(/\.0$/, '')}%`;
}

/** A duration in microseconds: 850µs, 12.3ms, 1.24s, 2m 3s. */
export function fmtDuration(us) {
  const v = Number(us) || 0;
  if (v < 1000) return `${Math.round(v)}µs`;
  if (v < 1e6) return `${trim(v / 1000)}ms`;
  if (v < 60e6) return `${trim(v / 1e6)}s`;
  const totalSeconds = Math.round(v / 1e6);
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  return hours > 0 ? `${hours}h ${minutes}m` : `${minutes}m ${seconds}s`;
}

function trim(x) {
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1).replace(/\.0$/, '');
  return x.toFixed(2).replace(/\.?0+$/, '');
}

function pad(n, width = 2) {
  return String(n).padStart(width, '0');
}

/** Microseconds since the epoch -> "2026-11-28 18:57:03.123" (local time). */
export function fmtDateTime(us) {
  const d = new Date(Math.floor((Number(us) || 0) / 1000));
  return `${fmtDate(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function fmtDate(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Milliseconds since the epoch -> "18:57:03" (local time). */
export function fmtClock(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** How long ago, from microseconds since the epoch: "12s ago", "3 min ago". */
export function fmtAgo(us, nowMs = Date.now()) {
  const seconds = Math.round((nowMs - (Number(us) || 0) / 1000) / 1000);
  if (seconds < 0) return 'just now';
  if (seconds < 60) return `${seconds}s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

/** A window length in seconds -> "5m", "1h", "24h". */
export function fmtWindow(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** Service colours: 12 classes c0..c11 in weft.css, handed out in order of
 * first use and kept for the whole session, so a service has the same colour
 * in the trace list and in every trace. */
const PALETTE_SIZE = 12;
const serviceColours = new Map();

export function registerServices(names) {
  for (const name of [...names].sort()) colourClass(name);
}

export function colourClass(service) {
  let index = serviceColours.get(service);
  if (index === undefined) {
    index = serviceColours.size % PALETTE_SIZE;
    serviceColours.set(service, index);
  }
  return `c${index}`;
}

/** A latency in milliseconds, with precision to match its size. */
export function fmtMs(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 100) return `${v.toFixed(1)} ms`;
  if (v < 10000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(1)} s`;
}
