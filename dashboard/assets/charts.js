// Small SVG line charts for RED series (no library). Geometry goes into SVG
// attributes; colours come from classes (series-0 … series-5) in weft.css.

import { h, s } from './dom.js';
import { fmtClock, fmtMs, fmtRate } from './format.js';
import { list, num } from './api.js';

const W = 560;
const H = 170;
const PAD_L = 56;
const PAD_R = 10;
const PAD_T = 12;
const PAD_B = 22;

/**
 * chart({ title, series: [{ name, points: [[t_ms, value|null], …] }], format })
 * -> a figure with an SVG chart and a legend. Null values break the line.
 */
export function lineChart({ title, series, format, min }) {
  let t0 = Infinity;
  let t1 = -Infinity;
  let vMax = 0;
  let vMin = min === undefined ? 0 : min;
  for (const one of series) {
    for (const [t, v] of one.points) {
      if (t < t0) t0 = t;
      if (t > t1) t1 = t;
      if (v !== null && Number.isFinite(v)) {
        vMax = Math.max(vMax, v);
        vMin = Math.min(vMin, v);
      }
    }
  }
  if (!Number.isFinite(t0)) {
    t0 = Date.now() - 60000;
    t1 = Date.now();
  }
  if (t1 <= t0) t1 = t0 + 1000;
  if (vMax <= vMin) vMax = vMin + 1;
  vMax *= 1.08;
  const x = (t) => PAD_L + ((t - t0) / (t1 - t0)) * (W - PAD_L - PAD_R);
  const y = (v) => H - PAD_B - ((v - vMin) / (vMax - vMin)) * (H - PAD_T - PAD_B);
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  for (let k = 0; k <= 3; k++) {
    const v = vMin + ((vMax - vMin) * k) / 3;
    svg.appendChild(s('line', { class: 'grid-line', x1: PAD_L, x2: W - PAD_R, y1: y(v).toFixed(1), y2: y(v).toFixed(1) }));
    svg.appendChild(s('text', { class: 'axis-label', x: PAD_L - 6, y: (y(v) + 4).toFixed(1), 'text-anchor': 'end', text: format(v) }));
  }
  svg.appendChild(s('text', { class: 'axis-label', x: PAD_L, y: H - 5, text: fmtClock(t0) }));
  svg.appendChild(s('text', { class: 'axis-label', x: W - PAD_R, y: H - 5, 'text-anchor': 'end', text: fmtClock(t1) }));
  series.forEach((one, index) => {
    let d = '';
    let pen = false;
    for (const [t, v] of one.points) {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
      pen = true;
    }
    const colour = one.colour === undefined ? index : one.colour;
    if (d) svg.appendChild(s('path', { class: `chart-line series-${colour % 6}${one.dashed ? ' dashed' : ''}`, d, 'data-series': one.name }));
    // Isolated points (no value on either side: a line needs two) still show.
    const has = (k) => k >= 0 && k < one.points.length && one.points[k][1] !== null && Number.isFinite(one.points[k][1]);
    one.points.forEach(([t, v], k) => {
      if (has(k) && !has(k - 1) && !has(k + 1)) {
        svg.appendChild(s('circle', { class: `chart-dot series-${colour % 6}`, cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 3 }));
      }
    });
  });
  const legend = h(
    'div',
    { class: 'chart-legend' },
    series.map((one, index) =>
      h('span', { class: 'chart-key' }, h('span', { class: `key-swatch series-${(one.colour === undefined ? index : one.colour) % 6}${one.dashed ? ' dashed' : ''}` }), one.name),
    ),
  );
  return h('figure', { class: 'chart-box' }, h('figcaption', { text: title }), svg, legend);
}

/** The three RED charts (rate, errors, duration quantiles) of a /api/weft/red answer. */
export function redCharts(data) {
  const points = list(data.points);
  const at = (key, scale = 1) => points.map((p) => [num(p.t_ms), p[key] === null || p[key] === undefined ? null : Number(p[key]) * scale]);
  return [
    lineChart({ title: 'Request rate (rps)', series: [{ name: 'rps', points: at('rps') }], format: fmtRate }),
    lineChart({ title: 'Errors (% of requests)', series: [{ name: 'error %', points: at('error_rate', 100) }], format: (v) => `${v.toFixed(1)}%` }),
    lineChart({
      title: 'Duration',
      series: [
        { name: 'p50', points: at('p50_ms') },
        { name: 'p95', points: at('p95_ms') },
        { name: 'p99', points: at('p99_ms') },
      ],
      format: fmtMs,
    }),
  ];
}
