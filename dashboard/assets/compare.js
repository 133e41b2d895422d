// Compare two traces: #/compare?a=<traceId>&b=<traceId>
//
// A structural diff by service and operation: each span is keyed by the path
// of "service: operation" from its root; the merged tree lists how many
// spans each trace has at that path. DOM contract: tr.diff-row[data-status]
// with status same | added (only in B) | removed (only in A) | changed.

import { getJson, list, num, str } from './api.js';
import { h, message } from './dom.js';
import { colourClass, fmtDuration, fmtInt } from './format.js';
import { buildTree } from './trace.js';

/** path key -> { count, duration, errors, depth, label, service } */
export function pathCounts(rawSpans) {
  const spans = rawSpans.map((r) => ({
    span_id: str(r.span_id),
    parent_span_id: r.parent_span_id ? str(r.parent_span_id) : null,
    service: str(r.service),
    operation: str(r.operation),
    start_us: num(r.start_us),
    duration_us: num(r.duration_us),
    status: str(r.status),
  }));
  const tree = buildTree(spans);
  const keys = new Array(spans.length);
  const index = new Map(spans.map((sp, i) => [sp.span_id, i]));
  const out = new Map();
  for (const i of tree.order) {
    const sp = spans[i];
    const label = `${sp.service}: ${sp.operation}`;
    const parent = sp.parent_span_id && index.has(sp.parent_span_id) ? index.get(sp.parent_span_id) : -1;
    const key = parent >= 0 && keys[parent] ? `${keys[parent]}\u0001${label}` : label;
    keys[i] = key;
    const row = out.get(key) || { count: 0, duration: 0, errors: 0, depth: tree.depth[i], label, service: sp.service, first: out.size };
    row.count++;
    row.duration += sp.duration_us;
    if (sp.status === 'ERROR') row.errors++;
    out.set(key, row);
  }
  return out;
}

export async function mountCompare(root, ctx) {
  const a = (ctx.params.get('a') || '').toLowerCase();
  const b = (ctx.params.get('b') || '').toLowerCase();
  ctx.setTitle('Compare traces');
  root.appendChild(h('div', { class: 'toolbar' }, h('a', { class: 'back-link', href: '#/traces', text: '← Traces' }), h('h1', { class: 'view-title', text: 'Compare traces' })));
  if (!/^[0-9a-f]{1,32}$/.test(a) || !/^[0-9a-f]{1,32}$/.test(b)) {
    root.appendChild(message('error', 'Two trace IDs needed', 'Select two traces in the search results, or open a trace and compare it with another ID.'));
    ctx.setState('error');
    return;
  }
  const [ta, tb] = await Promise.all([a, b].map((id) => getJson(`/api/weft/traces/${id}`, null, ctx.signal)));
  const pa = pathCounts(list(ta.spans));
  const pb = pathCounts(list(tb.spans));
  // Merged tree: A's paths in A's order, then paths only in B; children
  // listed under their parent path (depth first).
  const children = new Map();
  const roots = [];
  for (const key of [...pa.keys(), ...[...pb.keys()].filter((k) => !pa.has(k))]) {
    const cut = key.lastIndexOf('\u0001');
    const parent = cut < 0 ? null : key.slice(0, cut);
    if (parent === null || !(pa.has(parent) || pb.has(parent))) roots.push(key);
    else (children.get(parent) || children.set(parent, []).get(parent)).push(key);
  }
  const keys = [];
  const stack = roots.slice().reverse();
  while (stack.length > 0) {
    const key = stack.pop();
    keys.push(key);
    const kids = children.get(key);
    if (kids) for (let k = kids.length - 1; k >= 0; k--) stack.push(kids[k]);
  }
  let same = 0;
  let changed = 0;
  let added = 0;
  let removed = 0;
  const body = h('tbody');
  for (const key of keys) {
    const ra = pa.get(key);
    const rb = pb.get(key);
    const status = !ra ? 'added' : !rb ? 'removed' : ra.count === rb.count ? 'same' : 'changed';
    if (status === 'same') same++;
    else if (status === 'changed') changed++;
    else if (status === 'added') added++;
    else removed++;
    const r = ra || rb;
    body.appendChild(
      h(
        'tr',
        { class: `diff-row diff-${status}`, 'data-status': status },
        h('td', { class: `wf-name indent-${Math.min(r.depth, 16)}` }, h('span', { class: `svc-bar ${colourClass(r.service)}` }), r.label),
        h('td', { class: 'num', text: ra ? fmtInt(ra.count) : '—' }),
        h('td', { class: 'num', text: rb ? fmtInt(rb.count) : '—' }),
        h('td', { class: 'num', text: ra ? fmtDuration(ra.duration / ra.count) : '—' }),
        h('td', { class: 'num', text: rb ? fmtDuration(rb.duration / rb.count) : '—' }),
        h('td', { text: status }),
      ),
    );
  }
  const summary = (t, id) => {
    const spans = list(t.spans);
    let start = Infinity;
    let end = -Infinity;
    for (const sp of spans) {
      start = Math.min(start, num(sp.start_us));
      end = Math.max(end, num(sp.start_us) + num(sp.duration_us));
    }
    return h('div', { class: 'fact' }, h('a', { class: 'mono', href: `#/trace/${id}`, text: id }), h('div', { class: 'muted small', text: `${fmtInt(spans.length)} spans · ${fmtDuration(end - start)}` }));
  };
  root.append(
    h(
      'section',
      { class: 'card trace-facts compare-card' },
      h('div', null, h('strong', { text: 'A ' }), summary(ta, a)),
      h('div', null, h('strong', { text: 'B ' }), summary(tb, b)),
      h('div', { class: 'muted', text: `${same} same · ${changed} changed · ${added} only in B · ${removed} only in A` }),
    ),
    h(
      'section',
      { class: 'card diff-card' },
      h(
        'table',
        { class: 'table diff-table' },
        h('thead', null, h('tr', null, h('th', { text: 'Service: operation (by path)' }), ['Spans A', 'Spans B', 'Avg A', 'Avg B'].map((t) => h('th', { class: 'num', text: t })), h('th', { text: 'Status' }))),
        body,
      ),
    ),
  );
  ctx.setState('ready');
}
