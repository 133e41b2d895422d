// Trace view: #/trace/<traceId>, a waterfall of all spans.
//
// DOM contract: div.span-row[data-span-id][data-service] per *rendered* span
// in tree order (the waterfall is virtualized: only the rows near the
// viewport exist); clicking a row fills the side panel #span-detail. Rows on
// the critical path carry the class `crit`. The root element gets
// data-span-count and, once painted, data-painted-ms (see app.js).
//
// Large traces (10,000+ spans) stay fast: the tree is built with maps and an
// explicit stack; the waterfall keeps one list of visible tree positions and
// renders only the ~60 rows around the viewport between two spacers (their
// heights are set through the CSSOM, which the CSP allows; no style
// attributes); bar geometry is SVG percentage attributes. One delegated
// listener handles clicks for all rows.

import { ApiError, getJson, list, num, str } from './api.js';
import { add, clear, h, kvTable, message, s } from './dom.js';
import { colourClass, fmtDateTime, fmtDuration, fmtInt, registerServices } from './format.js';
import { buildHash, navigate } from './router.js';

const MAX_INDENT = 16; // deeper spans share the last indentation class and show their depth

/** Orders spans as a tree: children under parents sorted by start time;
 * spans whose parent is missing (or that sit in a parent cycle) are roots. */
export function buildTree(spans) {
  const n = spans.length;
  const byId = new Map();
  for (let i = 0; i < n; i++) {
    const id = spans[i].span_id;
    if (!byId.has(id)) byId.set(id, i);
  }
  const children = new Array(n);
  const roots = [];
  for (let i = 0; i < n; i++) {
    const parentId = spans[i].parent_span_id;
    const parent = parentId ? byId.get(parentId) : undefined;
    if (parent === undefined || parent === i) {
      roots.push(i);
    } else {
      (children[parent] ||= []).push(i);
    }
  }
  const byStart = (a, b) => {
    const dt = spans[a].start_us - spans[b].start_us;
    if (dt !== 0) return dt;
    const ia = spans[a].span_id;
    const ib = spans[b].span_id;
    return ia < ib ? -1 : ia > ib ? 1 : a - b;
  };
  roots.sort(byStart);
  for (const c of children) if (c) c.sort(byStart);

  const order = new Array(n);
  const depth = new Int32Array(n);
  const subtreeEnd = new Int32Array(n); // position (in order) after the last descendant
  const position = new Int32Array(n);
  const visited = new Uint8Array(n);
  let count = 0;
  const walk = (root) => {
    // Iterative pre-order DFS; entries are [span, depth, childCursor].
    const stack = [[root, 0, 0]];
    visited[root] = 1;
    position[root] = count;
    depth[root] = 0;
    order[count++] = root;
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const kids = children[top[0]];
      if (kids && top[2] < kids.length) {
        const child = kids[top[2]++];
        if (visited[child]) continue;
        visited[child] = 1;
        position[child] = count;
        depth[child] = top[1] + 1;
        order[count++] = child;
        stack.push([child, top[1] + 1, 0]);
      } else {
        subtreeEnd[top[0]] = count;
        stack.pop();
      }
    }
  };
  for (const root of roots) walk(root);
  // Spans caught in a parent cycle were never reached: show them as roots.
  const rest = [];
  for (let i = 0; i < n; i++) if (!visited[i]) rest.push(i);
  rest.sort(byStart);
  for (const i of rest) if (!visited[i]) walk(i);
  return { order, depth, subtreeEnd, position, children };
}

function normaliseSpan(raw) {
  const start = num(raw.start_us);
  return {
    span_id: str(raw.span_id),
    parent_span_id: raw.parent_span_id ? str(raw.parent_span_id) : null,
    service: str(raw.service) || '(unknown service)',
    service_version: raw.service_version ? str(raw.service_version) : '',
    operation: str(raw.operation),
    kind: str(raw.kind) || 'UNSPECIFIED',
    start_us: start,
    duration_us: Math.max(0, num(raw.duration_us)),
    status: str(raw.status) || 'UNSET',
    status_message: str(raw.status_message),
    attributes: raw.attributes && typeof raw.attributes === 'object' ? raw.attributes : {},
    resource: raw.resource && typeof raw.resource === 'object' ? raw.resource : {},
    events: list(raw.events).filter((e) => e && typeof e === 'object'),
  };
}

const ROW_H = 26; // px, must match .span-row in weft.css
const OVERSCAN = 30;

/**
 * The critical path (Jaeger's definition): walking back from the end of the
 * root, the span that finishes last before the cursor is what the parent
 * waited for. Returns, per span index, the [start, end] segments (µs) that
 * lie on the path.
 */
export function criticalPath(spans, tree) {
  const segments = new Array(spans.length);
  const push = (i, from, to) => {
    if (to > from) (segments[i] ||= []).push([from, to]);
  };
  const end = (i) => spans[i].start_us + spans[i].duration_us;
  const walk = (i, limit, depth) => {
    const sp = spans[i];
    let cursor = Math.min(end(i), limit);
    const kids = (tree.children[i] || []).slice().sort((a, b) => end(b) - end(a));
    for (const child of kids) {
      if (cursor <= sp.start_us) break;
      const c = spans[child];
      if (c.start_us >= cursor) continue;
      const childEnd = Math.min(end(child), cursor);
      push(i, childEnd, cursor);
      if (depth < 5000) walk(child, childEnd, depth + 1);
      cursor = Math.max(sp.start_us, c.start_us);
    }
    push(i, sp.start_us, cursor);
  };
  const root = tree.order[0];
  if (root !== undefined) walk(root, end(root), 0);
  return segments;
}

/** Per service and operation: spans, errors, total and self time (µs). */
export function summarize(spans, tree) {
  const rows = new Map();
  for (let i = 0; i < spans.length; i++) {
    const sp = spans[i];
    let childTime = 0;
    for (const c of tree.children[i] || []) {
      const from = Math.max(sp.start_us, spans[c].start_us);
      const to = Math.min(sp.start_us + sp.duration_us, spans[c].start_us + spans[c].duration_us);
      if (to > from) childTime += to - from;
    }
    const key = `${sp.service}\u0000${sp.operation}`;
    const row = rows.get(key) || { service: sp.service, operation: sp.operation, count: 0, errors: 0, total: 0, self: 0, max: 0 };
    row.count++;
    if (sp.status === 'ERROR') row.errors++;
    row.total += sp.duration_us;
    row.self += Math.max(0, sp.duration_us - childTime);
    row.max = Math.max(row.max, sp.duration_us);
    rows.set(key, row);
  }
  return [...rows.values()].sort((a, b) => b.self - a.self || (a.service < b.service ? -1 : 1));
}

export async function mountTrace(root, ctx) {
  const traceId = ctx.segments[1] || '';
  ctx.setTitle(`Trace ${traceId.slice(0, 8)}`);
  const back = h('a', { class: 'back-link', href: '#/traces', text: '← Traces' });
  root.appendChild(
    h('div', { class: 'toolbar' }, back, h('h1', { class: 'view-title', text: 'Trace' }), h('span', { class: 'mono muted', text: traceId })),
  );
  const loading = h('p', { class: 'muted loading-line', text: 'Loading trace…' });
  root.appendChild(loading);

  if (!/^[0-9a-fA-F]{1,32}$/.test(traceId)) {
    loading.replaceWith(message('error', 'Not a trace ID', 'Trace IDs are up to 32 hexadecimal digits.'));
    ctx.setState('error');
    return;
  }

  let data;
  try {
    data = await getJson(`/api/weft/traces/${encodeURIComponent(traceId)}`, null, ctx.signal);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      const detail = `No trace ${traceId} is stored. It may be older than the retention period, or not yet written.`;
      const search = h('a', { class: 'button', href: '#/traces', text: 'Search traces' });
      loading.replaceWith(message('error', 'Trace not found', detail, search));
      ctx.setState('error');
      return;
    }
    if (err instanceof ApiError) {
      loading.replaceWith(message('error', 'Could not load the trace', err.message));
      ctx.setState('error');
      return;
    }
    throw err;
  }

  const started = performance.now();
  const spans = list(data.spans).filter((raw) => raw && typeof raw === 'object').map(normaliseSpan);
  if (spans.length === 0) {
    loading.replaceWith(message('empty', 'This trace has no spans', 'The collector knows the trace ID but returned no spans for it.'));
    ctx.setState('empty');
    return;
  }
  const tree = buildTree(spans);
  const critical = criticalPath(spans, tree);

  let traceStart = Infinity;
  let traceEnd = -Infinity;
  const services = new Set();
  let errorCount = 0;
  let maxDepth = 0;
  for (let i = 0; i < spans.length; i++) {
    const sp = spans[i];
    if (sp.start_us < traceStart) traceStart = sp.start_us;
    if (sp.start_us + sp.duration_us > traceEnd) traceEnd = sp.start_us + sp.duration_us;
    services.add(sp.service);
    if (sp.status === 'ERROR') errorCount++;
    if (tree.depth[i] > maxDepth) maxDepth = tree.depth[i];
  }
  const traceDuration = Math.max(1, traceEnd - traceStart);
  registerServices(services);
  const rootSpan = spans[tree.order[0]];
  ctx.setTitle(`${rootSpan.service}: ${rootSpan.operation}`);

  // --- header ---
  const compareInput = h('input', { id: 'compare-with', type: 'search', placeholder: 'other trace ID', spellcheck: 'false', 'aria-label': 'Trace ID to compare with' });
  const compareForm = h(
    'form',
    { class: 'compare-form' },
    compareInput,
    h('button', { class: 'button small', type: 'submit', text: 'Compare' }),
  );
  compareForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const other = compareInput.value.trim().toLowerCase();
    if (/^[0-9a-f]{1,32}$/.test(other)) navigate(buildHash('/compare', { a: traceId, b: other }));
    else compareInput.classList.add('invalid');
  });
  const header = h(
    'section',
    { class: 'trace-header card' },
    h(
      'h2',
      { class: 'trace-title' },
      h('span', { class: `svc-dot ${colourClass(rootSpan.service)}` }),
      h('strong', { text: rootSpan.service }),
      ': ',
      rootSpan.operation || '(no operation)',
    ),
    h(
      'div',
      { class: 'trace-facts' },
      fact('Trace ID', h('span', { class: 'mono', text: str(data.trace_id) || traceId })),
      fact('Started', fmtDateTime(traceStart)),
      fact('Duration', fmtDuration(traceDuration)),
      fact('Services', fmtInt(services.size)),
      fact('Spans', fmtInt(spans.length)),
      fact('Depth', fmtInt(maxDepth + 1)),
      fact('Errors', errorCount > 0 ? h('span', { class: 'badge health-failure', text: fmtInt(errorCount) }) : '0'),
    ),
    h(
      'div',
      { class: 'trace-services' },
      [...services].sort().map((name) => h('a', { class: `svc-chip ${colourClass(name)}`, href: buildHash(`/service/${encodeURIComponent(name)}`, {}), title: `RED metrics of ${name}`, text: name })),
      compareForm,
    ),
  );

  // --- summary (Jaeger's trace statistics) ---
  const summaryRows = summarize(spans, tree);
  const summaryBody = h('tbody');
  for (const row of summaryRows.slice(0, 200)) {
    summaryBody.appendChild(
      h(
        'tr',
        null,
        h('td', null, h('span', { class: `svc-dot ${colourClass(row.service)}` }), row.service),
        h('td', { text: row.operation || '(no operation)' }),
        h('td', { class: 'num', text: fmtInt(row.count) }),
        h('td', { class: row.errors > 0 ? 'num text-failure' : 'num', text: fmtInt(row.errors) }),
        h('td', { class: 'num', text: fmtDuration(row.total) }),
        h('td', { class: 'num', text: fmtDuration(row.total / row.count) }),
        h('td', { class: 'num', text: fmtDuration(row.max) }),
        h('td', { class: 'num', text: fmtDuration(row.self) }),
        h('td', { class: 'num', text: `${((row.self / traceDuration) * 100).toFixed(1)}%` }),
      ),
    );
  }
  const summary = h(
    'details',
    { class: 'trace-summary card', id: 'trace-summary' },
    h('summary', { text: `Services and operations (${fmtInt(summaryRows.length)})` }),
    h(
      'table',
      { class: 'table summary-table' },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          ['Service', 'Operation'].map((t) => h('th', { text: t })),
          ['Spans', 'Errors', 'Total', 'Avg', 'Max', 'Self time', 'Self % of trace'].map((t) => h('th', { class: 'num', text: t })),
        ),
      ),
      summaryBody,
    ),
  );

  // --- waterfall ---
  const expandAll = h('button', { class: 'button small', type: 'button', text: 'Expand all' });
  const collapseAll = h('button', { class: 'button small', type: 'button', text: 'Collapse all' });
  const critToggle = h('input', { id: 'crit-toggle', type: 'checkbox', checked: true });
  const ticks = h('div', { class: 'ticks' });
  for (let q = 0; q <= 4; q++) {
    ticks.appendChild(h('span', { class: `tick tick-${q}`, text: q === 0 ? '0' : fmtDuration((traceDuration * q) / 4) }));
  }
  const head = h(
    'div',
    { class: 'waterfall-head' },
    h(
      'div',
      { class: 'wf-name-head' },
      h('span', { text: 'Service & operation' }),
      h('span', { class: 'wf-buttons' }, h('label', { class: 'crit-label', for: 'crit-toggle' }, critToggle, ' Critical path'), expandAll, collapseAll),
    ),
    h('div', { class: 'wf-time-head' }, ticks),
  );

  const topSpacer = h('div', { class: 'wf-spacer' });
  const bottomSpacer = h('div', { class: 'wf-spacer' });
  const rowBox = h('div', { class: 'wf-rows' });
  const waterfallBody = h('div', { class: 'waterfall-body', role: 'rowgroup' }, topSpacer, rowBox, bottomSpacer);
  const waterfall = h('section', { class: 'waterfall card show-crit', role: 'table', 'aria-label': 'Spans' }, head, waterfallBody);
  critToggle.addEventListener('change', () => waterfall.classList.toggle('show-crit', critToggle.checked));

  const detail = h('aside', { id: 'span-detail', class: 'span-detail card', hidden: true, 'aria-label': 'Span details' });
  const layoutEl = h('div', { class: 'trace-layout' }, waterfall, detail);
  loading.replaceWith(header, summary, layoutEl);

  const collapsed = new Uint8Array(spans.length);
  let selectedIndex = -1;
  // Tree positions currently shown (not inside a collapsed subtree).
  let visible = new Int32Array(0);
  // Find in trace: when set, only the spans whose service, operation or an
  // attribute value contains the text are listed (in tree order).
  let matches = null;
  const computeVisible = () => {
    const out = new Int32Array(tree.order.length);
    let n = 0;
    for (let p = 0; p < tree.order.length; p++) {
      const i = tree.order[p];
      if (matches) {
        if (matches[i]) out[n++] = p;
        continue;
      }
      out[n++] = p;
      if (collapsed[i]) p = tree.subtreeEnd[i] - 1;
    }
    visible = out.subarray(0, n);
  };
  const findInput = h('input', { id: 'trace-find', type: 'search', placeholder: 'Find in trace…', 'aria-label': 'Find spans in this trace', spellcheck: 'false' });
  const findCount = h('span', { class: 'muted small', id: 'trace-find-count', role: 'status' });
  const runFind = () => {
    const needle = findInput.value.trim().toLowerCase();
    if (!needle) {
      matches = null;
      findCount.textContent = '';
    } else {
      matches = new Uint8Array(spans.length);
      let count = 0;
      for (let i = 0; i < spans.length; i++) {
        const sp = spans[i];
        let hit = sp.service.toLowerCase().includes(needle) || sp.operation.toLowerCase().includes(needle) || sp.span_id === needle;
        if (!hit) {
          for (const value of Object.values(sp.attributes)) {
            if (String(value).toLowerCase().includes(needle)) {
              hit = true;
              break;
            }
          }
        }
        if (hit) {
          matches[i] = 1;
          count++;
        }
      }
      findCount.textContent = `${fmtInt(count)} of ${fmtInt(spans.length)} spans match`;
      findCount.dataset.count = String(count);
    }
    computeVisible();
    renderWindow(true);
  };
  findInput.addEventListener('input', () => {
    clearTimeout(findInput.timer);
    findInput.timer = setTimeout(runFind, 150);
  });
  findInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      clearTimeout(findInput.timer);
      runFind();
    }
  });
  header.lastChild.appendChild(h('span', { class: 'trace-find' }, findInput, findCount));

  const makeRow = (p) => {
    const i = tree.order[p];
    const sp = spans[i];
    const d = tree.depth[i];
    const hasChildren = tree.subtreeEnd[i] > p + 1;
    const colour = colourClass(sp.service);
    const isError = sp.status === 'ERROR';
    const left = ((sp.start_us - traceStart) / traceDuration) * 100;
    const width = Math.max(0.15, (sp.duration_us / traceDuration) * 100);
    const labelPlace = left + width < 72 ? 'right' : left > 14 ? 'left' : 'inside';
    const kind = sp.kind && sp.kind !== 'UNSPECIFIED' ? sp.kind.toLowerCase() : '';
    const crit = critical[i];
    let cls = 'span-row';
    if (isError) cls += ' error';
    if (crit) cls += ' crit';
    if (collapsed[i]) cls += ' collapsed';
    if (i === selectedIndex) cls += ' selected';
    return h(
      'div',
      { class: cls, 'data-span-id': sp.span_id, 'data-service': sp.service, 'data-index': i, role: 'row' },
      h(
        'div',
        { class: `wf-name indent-${Math.min(d, MAX_INDENT)}` },
        hasChildren
          ? h('button', {
              class: 'toggle',
              type: 'button',
              'aria-expanded': collapsed[i] ? 'false' : 'true',
              'aria-label': collapsed[i] ? 'Expand children' : 'Collapse children',
            })
          : h('span', { class: 'toggle-spacer' }),
        h('span', { class: `svc-bar ${colour}` }),
        h('span', { class: 'wf-service', text: sp.service }),
        h('span', { class: 'wf-op', title: sp.operation, text: sp.operation }),
        d > MAX_INDENT ? h('span', { class: 'depth-badge', text: `depth ${d}` }) : null,
        kind ? h('span', { class: `kind kind-${kind}`, text: kind }) : null,
        d === 0 && sp.parent_span_id
          ? h('span', { class: 'kind orphan', title: `Parent span ${sp.parent_span_id} is not in this trace`, text: 'no parent' })
          : null,
        collapsed[i] ? h('span', { class: 'depth-badge', text: `+${fmtInt(tree.subtreeEnd[i] - p - 1)}` }) : null,
        isError ? h('span', { class: 'err-icon', title: sp.status_message || 'error', text: '!' }) : null,
      ),
      h(
        'div',
        { class: 'wf-time' },
        s(
          'svg',
          { class: 'wf-svg', 'aria-hidden': 'true' },
          s('rect', {
            class: isError ? `wf-bar ${colour} error` : `wf-bar ${colour}`,
            x: `${left.toFixed(3)}%`,
            y: 6,
            width: `${width.toFixed(3)}%`,
            height: 12,
            rx: 2,
          }),
          crit
            ? crit.map(([from, to]) =>
                s('rect', {
                  class: 'wf-crit',
                  x: `${(((from - traceStart) / traceDuration) * 100).toFixed(3)}%`,
                  y: 10,
                  width: `${Math.max(0.1, ((to - from) / traceDuration) * 100).toFixed(3)}%`,
                  height: 4,
                }),
              )
            : null,
          s('text', {
            class: labelPlace === 'inside' ? 'wf-dur inside' : 'wf-dur',
            x: `${(labelPlace === 'right' ? left + width + 0.6 : labelPlace === 'left' ? left - 0.6 : left + 0.6).toFixed(3)}%`,
            y: 16,
            'text-anchor': labelPlace === 'left' ? 'end' : 'start',
            text: fmtDuration(sp.duration_us),
          }),
        ),
      ),
    );
  };

  let rendered = [-1, -1];
  const renderWindow = (force) => {
    const rect = waterfallBody.getBoundingClientRect();
    const viewportRows = Math.ceil((window.innerHeight || 900) / ROW_H);
    const firstVisible = Math.floor(Math.max(0, -rect.top) / ROW_H);
    const from = Math.max(0, firstVisible - OVERSCAN);
    const to = Math.min(visible.length, firstVisible + viewportRows + OVERSCAN);
    if (!force && from === rendered[0] && to === rendered[1]) return;
    rendered = [from, to];
    const fragment = document.createDocumentFragment();
    for (let k = from; k < to; k++) fragment.appendChild(makeRow(visible[k]));
    rowBox.replaceChildren(fragment);
    topSpacer.style.height = `${from * ROW_H}px`;
    bottomSpacer.style.height = `${(visible.length - to) * ROW_H}px`;
  };
  let scheduled = false;
  const onScroll = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      if (!ctx.signal.aborted) renderWindow(false);
    });
  };
  window.addEventListener('scroll', onScroll, { passive: true });
  window.addEventListener('resize', onScroll, { passive: true });
  ctx.signal.addEventListener('abort', () => {
    window.removeEventListener('scroll', onScroll);
    window.removeEventListener('resize', onScroll);
  });
  computeVisible();
  renderWindow(true);

  // --- interactions (one delegated listener) ---
  const closeDetail = () => {
    selectedIndex = -1;
    detail.hidden = true;
    layoutEl.classList.remove('with-detail');
    renderWindow(true);
  };
  waterfallBody.addEventListener('click', (event) => {
    if (!(event.target instanceof Element)) return;
    const row = event.target.closest('.span-row');
    if (!row) return;
    const i = Number(row.dataset.index);
    if (event.target.closest('.toggle')) {
      collapsed[i] = collapsed[i] ? 0 : 1;
      computeVisible();
      renderWindow(true);
      return;
    }
    selectedIndex = i;
    for (const el of rowBox.querySelectorAll('.span-row.selected')) el.classList.remove('selected');
    row.classList.add('selected');
    showDetail(detail, spans[i], traceStart, closeDetail);
    layoutEl.classList.add('with-detail');
  });
  expandAll.addEventListener('click', () => {
    collapsed.fill(0);
    computeVisible();
    renderWindow(true);
  });
  collapseAll.addEventListener('click', () => {
    // Keep the roots and their direct children visible.
    for (let i = 0; i < spans.length; i++) collapsed[i] = tree.depth[i] >= 1 && (tree.children[i] || []).length > 0 ? 1 : 0;
    computeVisible();
    renderWindow(true);
  });

  root.dataset.spanCount = String(spans.length);
  root.dataset.renderMs = String(Math.round(performance.now() - started));
  ctx.setState('ready');
}

function fact(label, value) {
  return h('div', { class: 'fact' }, h('div', { class: 'fact-label', text: label }), h('div', { class: 'fact-value' }, value));
}

function showDetail(panel, sp, traceStart, onClose) {
  clear(panel);
  const statusClass = sp.status === 'ERROR' ? 'health-failure' : sp.status === 'OK' ? 'health-healthy' : 'health-idle';
  add(
    panel,
    h(
      'div',
      { class: 'side-head' },
      h('span', { class: 'side-kind', text: 'Span' }),
      h('button', { class: 'close', type: 'button', 'aria-label': 'Close', text: '×', onclick: onClose }),
    ),
    h('h2', { class: 'side-title' }, h('span', { class: `svc-dot ${colourClass(sp.service)}` }), sp.service),
    h(
      'p',
      { class: 'small span-links' },
      h('a', { href: buildHash(`/service/${encodeURIComponent(sp.service)}`, {}), text: `RED of ${sp.service}` }),
      ' · ',
      h('a', { href: buildHash('/traces', { service: sp.service, operation: sp.operation }), text: 'traces of this operation' }),
    ),
    h('p', { class: 'detail-op', text: sp.operation || '(no operation)' }),
    h(
      'dl',
      { class: 'facts' },
      h('dt', { text: 'Status' }),
      h('dd', null, h('span', { class: `badge ${statusClass}`, text: sp.status })),
      sp.status_message ? [h('dt', { text: 'Message' }), h('dd', { class: 'text-failure', text: sp.status_message })] : null,
      h('dt', { text: 'Kind' }),
      h('dd', { text: sp.kind }),
      h('dt', { text: 'Duration' }),
      h('dd', { text: fmtDuration(sp.duration_us) }),
      h('dt', { text: 'Start' }),
      h('dd', null, `+${fmtDuration(sp.start_us - traceStart)}`, h('span', { class: 'muted', text: ` · ${fmtDateTime(sp.start_us)}` })),
      h('dt', { text: 'Version' }),
      h('dd', { text: sp.service_version || '—' }),
      h('dt', { text: 'Span ID' }),
      h('dd', { class: 'mono', text: sp.span_id }),
      h('dt', { text: 'Parent ID' }),
      h('dd', { class: 'mono', text: sp.parent_span_id || '— (root)' }),
    ),
    h('h3', { text: `Attributes (${Object.keys(sp.attributes).length})` }),
    kvTable(sp.attributes, 'No attributes.'),
    h('h3', { text: `Events (${sp.events.length})` }),
    sp.events.length === 0
      ? h('p', { class: 'muted small', text: 'No events.' })
      : h(
          'ol',
          { class: 'events' },
          [...sp.events]
            .sort((a, b) => num(a.time_us) - num(b.time_us))
            .map((event) =>
              h(
                'li',
                { class: str(event.name) === 'exception' ? 'event exception' : 'event' },
                h(
                  'div',
                  { class: 'event-head' },
                  h('span', { class: 'mono muted', text: `+${fmtDuration(num(event.time_us) - traceStart)}` }),
                  h('strong', { text: str(event.name) || '(unnamed)' }),
                ),
                kvTable(event.attributes, 'No attributes.'),
              ),
            ),
        ),
    h('h3', { text: `Resource (${Object.keys(sp.resource).length})` }),
    kvTable(sp.resource, 'No resource attributes.'),
  );
  panel.hidden = false;
  panel.scrollTop = 0;
}

