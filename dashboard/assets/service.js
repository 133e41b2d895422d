// RED of one service: #/service/<app or service name>?window=300[&end_ms=]
//
// Rate, errors and duration quantiles of the inbound traffic (destination
// reporter), from /api/weft/red. DOM contract: figure.chart-box per chart,
// .stat-value inside #red-summary.

import { getJson, list, num } from './api.js';
import { redCharts } from './charts.js';
import { hashWith, parseRange, rangeControls, rangeParams } from './controls.js';
import { h, message } from './dom.js';
import { fmtInt, fmtMs, fmtPercent, fmtRate } from './format.js';
import { buildHash } from './router.js';

export function stat(label, value, extra) {
  return h('div', { class: extra ? `stat ${extra}` : 'stat' }, h('div', { class: 'stat-value', text: value }), h('div', { class: 'stat-label', text: label }));
}


export function redSummary(summary) {
  return h(
    'div',
    { class: 'stats', id: 'red-summary' },
    stat('requests', fmtInt(num(summary.requests))),
    stat('rps', fmtRate(num(summary.rps))),
    stat('errors', fmtPercent(num(summary.error_rate)), num(summary.errors) > 0 ? 'text-failure' : ''),
    stat('p50', fmtMs(summary.p50_ms)),
    stat('p95', fmtMs(summary.p95_ms)),
    stat('p99', fmtMs(summary.p99_ms)),
  );
}

/** #/service without a name: every app seen in the last hour, linked. */
async function mountServiceList(root, ctx) {
  ctx.setTitle('Services');
  root.appendChild(h('div', { class: 'toolbar' }, h('h1', { class: 'view-title', text: 'Services' }), h('span', { class: 'toolbar-hint', text: 'Apps that received requests in the last hour' })));
  const data = await getJson('/api/weft/services', null, ctx.signal);
  const apps = list(data.apps);
  if (apps.length === 0) {
    root.appendChild(h('section', { class: 'card red-card' }, message('empty', 'No services yet', 'Apps appear here once their sidecars report requests.')));
    ctx.setState('empty');
    return;
  }
  const body = h(
    'tbody',
    null,
    apps.map((a) =>
      h(
        'tr',
        { class: 'service-row', 'data-app': String(a.app) },
        h('td', null, h('a', { href: buildHash(`/service/${encodeURIComponent(a.app)}`, {}), text: String(a.app) })),
        h('td', { text: String(a.namespace || '') }),
        h('td', { text: list(a.versions).join(', ') }),
        h('td', { text: list(a.workloads).join(', ') }),
        h(
          'td',
          null,
          h('a', { href: buildHash('/traces', { service: a.app }), text: 'traces' }),
          list(a.versions).length > 1 ? [' · ', h('a', { href: buildHash('/split', { service: a.app }), text: 'split' })] : null,
          ' · ',
          h('a', { href: buildHash('/graph', { focus: a.app }), text: 'graph' }),
        ),
      ),
    ),
  );
  root.appendChild(
    h(
      'section',
      { class: 'card red-card' },
      h('table', { class: 'table' }, h('thead', null, h('tr', null, ['App', 'Namespace', 'Versions', 'Workloads', 'Links'].map((t) => h('th', { text: t })))), body),
    ),
  );
  ctx.setState('ready');
}

export async function mountService(root, ctx) {
  const name = ctx.segments[1] || '';
  if (!name) return mountServiceList(root, ctx);
  const workload = ctx.params.get('workload') || '';
  const range = parseRange(ctx.params);
  const keep = { workload };
  ctx.setTitle(`RED of ${workload || name}`);
  const links = h(
    'div',
    { class: 'link-row' },
    h('a', { class: 'button small', href: buildHash('/traces', { service: name }), text: `Traces of ${name}` }),
    h('a', { class: 'button small', href: buildHash('/traces', { service: name, order: 'longest' }), text: 'Slowest traces' }),
    h('a', { class: 'button small', href: buildHash('/split', { service: name, window: range.windowSecs }), text: 'Canary split' }),
    h('a', { class: 'button small', href: buildHash('/graph', { focus: name, window: range.windowSecs }), text: 'Focus in graph' }),
  );
  root.append(
    h(
      'div',
      { class: 'toolbar' },
      h('a', { class: 'back-link', href: '#/graph', text: '← Graph' }),
      h('h1', { class: 'view-title', text: workload ? `Workload ${workload}` : `Service ${name}` }),
      h('div', { class: 'toolbar-spacer' }),
      rangeControls(range, hashWith(`/service/${encodeURIComponent(name)}`, keep)),
    ),
    links,
  );
  const body = h('section', { class: 'card red-card' }, h('p', { class: 'muted loading-line', text: 'Loading…' }));
  root.appendChild(body);
  const params = { ...rangeParams(range), ...(workload ? { workload } : { service: name }) };
  const data = await getJson('/api/weft/red', params, ctx.signal);
  const summary = data.summary || {};
  if (!(num(summary.requests) > 0)) {
    body.replaceChildren(message('empty', 'No requests in this window', `Nothing reached ${workload || name} in the chosen window. Try a longer one.`));
    ctx.setState('empty');
    return;
  }
  body.replaceChildren(
    h('p', { class: 'muted small', text: 'Inbound requests as reported by the destination sidecars (istio_requests_total and istio_request_duration_milliseconds); quantiles are interpolated from the histogram buckets like histogram_quantile.' }),
    redSummary(summary),
    h('div', { class: 'chart-grid' }, ...redCharts(data)),
  );
  ctx.setState('ready');
}
