// Service graph view:
//   #/graph?window=SECONDS[&end_ms=MS (replay)][&label=rps|errors|p50|p95|p99|share]
//          [&find=TEXT][&hide=a,b][&focus=APP]
//
// DOM contract (browser tests rely on it):
//   g.app-group[data-app]                      one box per versioned app
//   g.node[data-id][data-app][data-version]    one per workload, with a <text> label
//   g.edge[data-source][data-target][data-requests][data-rps][data-mtls]
//   #edge-traces tr.trace-row                  an edge's recent traces (side panel)
//   #node-red figure.chart-box                 a node's RED charts (side panel)

import { getJson, isAbort, list, num, str } from './api.js';
import { redCharts } from './charts.js';
import { hashWith, parseRange, rangeControls, rangeParams } from './controls.js';
import { add, clear, h, message, s } from './dom.js';
import { fmtClock, fmtDuration, fmtInt, fmtPercent, fmtRate, fmtWindow } from './format.js';
import { DEGRADED_RATE, FAILURE_RATE, NODE_FAILURE_RATE, NODE_R, buildModel, filterModel, layout } from './graph-model.js';
import { buildHash } from './router.js';

const REFRESH_MS = 5000;
const HEALTH_LABEL = { healthy: 'Healthy', degraded: 'Degraded', failure: 'Failure', idle: 'No traffic' };
const LABELS = [
  ['none', 'No labels'],
  ['rps', 'Request rate'],
  ['errors', 'Error rate'],
  ['p50', 'p50 latency'],
  ['p95', 'p95 latency'],
  ['p99', 'p99 latency'],
  ['share', 'Traffic distribution'],
];

function fmtMs(v) {
  return v === null || v === undefined ? 'n/a' : fmtDuration(v * 1000);
}

export async function mountGraph(root, ctx) {
  const range = parseRange(ctx.params);
  const windowSecs = range.windowSecs;
  // Without an explicit choice, big graphs start without edge labels (they
  // would cover each other); the select switches them on.
  const labelParam = ctx.params.get('label') || '';
  const explicitLabel = LABELS.some(([l]) => l === labelParam);
  let labelMode = explicitLabel ? labelParam : 'rps';
  const filters = { find: ctx.params.get('find') || '', hide: ctx.params.get('hide') || '', focus: ctx.params.get('focus') || '' };
  const keep = { label: explicitLabel ? labelParam : '', ...filters };
  const hashFor = hashWith('/graph', keep);
  ctx.setTitle('Service graph');

  const status = h('span', { class: 'refresh-status', role: 'status' }, 'Loading…');
  const labelSelect = h(
    'select',
    { id: 'graph-label', 'aria-label': 'Edge labels' },
    LABELS.map(([value, text]) => h('option', { value, text, selected: value === labelMode })),
  );
  labelSelect.addEventListener('change', () => {
    window.location.hash = buildHash('/graph', { ...rangeParams(range), ...keep, label: labelSelect.value });
  });
  const findInput = h('input', { id: 'graph-find', type: 'search', value: filters.find, placeholder: 'Find node…', 'aria-label': 'Find nodes' });
  const hideInput = h('input', { id: 'graph-hide', type: 'search', value: filters.hide, placeholder: 'Hide (a, b…)', 'aria-label': 'Hide nodes' });
  const focusInput = h('input', { id: 'graph-focus', type: 'search', value: filters.focus, placeholder: 'Focus on app…', list: 'graph-apps', 'aria-label': 'Focus on an app' });
  const appList = h('datalist', { id: 'graph-apps' });
  const filterForm = h(
    'form',
    { class: 'graph-filters', id: 'graph-filters' },
    findInput,
    hideInput,
    focusInput,
    appList,
    h('button', { class: 'button small', type: 'submit', text: 'Apply' }),
    filters.find || filters.hide || filters.focus ? h('a', { class: 'button small', href: buildHash('/graph', rangeParams(range)), text: 'Clear' }) : null,
  );
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    window.location.hash = buildHash('/graph', {
      ...rangeParams(range),
      label: keep.label,
      find: findInput.value.trim(),
      hide: hideInput.value.trim(),
      focus: focusInput.value.trim(),
    });
  });
  root.appendChild(
    h(
      'div',
      { class: 'toolbar' },
      h('h1', { class: 'view-title', text: 'Service graph' }),
      h('span', { class: 'toolbar-hint', text: 'Versioned app graph' }),
      h('div', { class: 'toolbar-spacer' }),
      status,
      rangeControls(range, hashFor),
    ),
  );
  root.appendChild(h('div', { class: 'toolbar toolbar-2' }, h('span', { class: 'toolbar-label', text: 'Edge labels' }), labelSelect, filterForm));
  const canvas = h('div', { class: 'graph-canvas' });
  const side = h('aside', { class: 'graph-side', 'aria-label': 'Details' });
  const body = h('div', { class: 'graph-layout' }, canvas, side);
  root.appendChild(body);

  let model = null;
  let selection = null; // { kind: 'node' | 'edge', key }
  let loadedOnce = false;
  let timer = 0;
  ctx.signal.addEventListener('abort', () => clearTimeout(timer));

  const select = (next) => {
    selection = next;
    for (const el of canvas.querySelectorAll('.selected')) el.classList.remove('selected');
    if (selection) {
      const el = findElement(canvas, selection);
      if (el) el.classList.add('selected');
      else selection = null;
    }
    renderSide(side, model, windowSecs, selection, select, loader);
  };

  canvas.addEventListener('click', (event) => {
    const target = event.target instanceof Element ? event.target.closest('g.node, g.edge') : null;
    if (!target) return select(null);
    if (target.classList.contains('node')) select({ kind: 'node', key: target.dataset.id });
    else select({ kind: 'edge', key: `${target.dataset.source}\u0000${target.dataset.target}` });
  });
  // Double-click a node: focus the graph on its app (Kiali's node graph).
  canvas.addEventListener('dblclick', (event) => {
    const target = event.target instanceof Element ? event.target.closest('g.node') : null;
    if (!target || !target.dataset.app) return;
    window.location.hash = buildHash('/graph', { ...rangeParams(range), label: keep.label, focus: target.dataset.app });
  });
  canvas.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' && event.key !== ' ') return;
    const target = event.target instanceof Element ? event.target.closest('g.node') : null;
    if (!target) return;
    event.preventDefault();
    select({ kind: 'node', key: target.dataset.id });
  });

  const cache = new Map();
  const loader = { signal: ctx.signal, range, cache };
  // Where each app box or node was placed, kept across refreshes.
  const memory = { units: new Map(), next: 0, tallest: 0 };
  const refresh = async () => {
    if (document.hidden && loadedOnce) {
      timer = setTimeout(refresh, REFRESH_MS);
      return;
    }
    try {
      const data = await getJson('/api/weft/graph', rangeParams(range), ctx.signal);
      if (!loadedOnce) {
        const apps = new Set(list(data.nodes).map((n) => str(n.app)).filter(Boolean));
        appList.replaceChildren(...[...apps].sort().map((a) => h('option', { value: a })));
      }
      model = buildModel(filterModel(data, filters));
      if (!explicitLabel) {
        labelMode = model.edges.length > 80 ? 'none' : 'rps';
        labelSelect.value = labelMode;
      }
      loadedOnce = true;
      const empty = model.nodes.size === 0;
      body.classList.toggle('is-empty', empty);
      if (empty) {
        clear(canvas).appendChild(
          message(
            'empty',
            `No traffic in the last ${fmtWindow(windowSecs)}`,
            'Requests through weft sidecars appear here within seconds. The graph refreshes every 5 s.',
          ),
        );
        selection = null;
      } else {
        const svg = renderSvg(model, labelMode, filters.find, memory);
        clear(canvas).appendChild(svg);
        fitToWidth(svg, canvas);
      }
      select(selection);
      status.className = 'refresh-status ok';
      status.textContent = range.endMs === null ? `Updated ${fmtClock(Date.now())} · every 5 s` : 'Replay (not refreshing)';
      ctx.setState(empty ? 'empty' : 'ready');
    } catch (err) {
      if (isAbort(err) || ctx.signal.aborted) return;
      if (loadedOnce) {
        status.className = 'refresh-status warn';
        status.textContent = `Refresh failed: ${err.message} · retrying`;
      } else {
        status.className = 'refresh-status warn';
        status.textContent = 'Retrying every 5 s';
        clear(canvas).appendChild(message('error', 'Could not load the service graph', err.message));
        body.classList.add('is-empty');
        ctx.setState('error');
      }
    }
    if (!ctx.signal.aborted && range.endMs === null) timer = setTimeout(refresh, REFRESH_MS);
  };
  await refresh();
}

function findElement(canvas, selection) {
  const selector = selection.kind === 'node' ? 'g.node' : 'g.edge';
  for (const el of canvas.querySelectorAll(selector)) {
    const key = selection.kind === 'node' ? el.dataset.id : `${el.dataset.source}\u0000${el.dataset.target}`;
    if (key === selection.key) return el;
  }
  return null;
}

/** Shrinks a wide graph to the canvas, but never below 85 % (labels stay
 * readable); beyond that the canvas scrolls. One layout read per refresh. */
function fitToWidth(svg, canvas) {
  const width = Number(svg.getAttribute('width'));
  const height = Number(svg.getAttribute('height'));
  const available = canvas.clientWidth - 24;
  if (!(available > 0) || width <= available) return;
  const scale = Math.max(0.85, available / width);
  svg.setAttribute('width', String(Math.floor(width * scale)));
  svg.setAttribute('height', String(Math.floor(height * scale)));
}

function edgeLabelLines(edge, mode) {
  let first;
  if (mode === 'errors') first = `${fmtPercent(edge.errorRate)} err`;
  else if (mode === 'p50' || mode === 'p95' || mode === 'p99') first = `${mode} ${fmtMs(edge[mode])}`;
  else if (mode === 'share') first = edge.share !== undefined ? fmtPercent(edge.share) : '100%';
  else first = `${fmtRate(edge.rps)} rps${edge.share !== undefined ? ` · ${fmtPercent(edge.share)}` : ''}`;
  const second = `${fmtInt(edge.requests)} req`;
  const errors = edge.errors > 0 && mode !== 'errors' ? ` · ${fmtPercent(edge.errorRate)} err` : '';
  return { first, second, errors };
}

/** A small padlock: mTLS on every request of the edge. */
function lockBadge(x, y) {
  return s(
    'g',
    { class: 'mtls-badge', 'aria-label': 'mutual TLS' },
    s('rect', { x: x - 5, y: y - 4, width: 10, height: 8, rx: 1.5 }),
    s('path', { d: `M${x - 3},${y - 4} v-2.5 a3,3 0 0,1 6,0 v2.5`, class: 'lock-shackle' }),
    s('title', { text: 'mutual TLS (connection_security_policy="mutual_tls" on every request)' }),
  );
}

function renderSvg(model, labelMode, find, memory) {
  const geo = layout(model, memory);
  const svg = s('svg', {
    class: 'graph',
    width: Math.ceil(geo.width),
    height: Math.ceil(geo.height),
    viewBox: `0 0 ${Math.ceil(geo.width)} ${Math.ceil(geo.height)}`,
    role: 'img',
    'aria-label': 'Service graph',
  });
  const defs = s('defs');
  for (const kind of ['healthy', 'degraded', 'failure', 'idle']) {
    defs.appendChild(
      s(
        'marker',
        {
          id: `arrow-${kind}`,
          viewBox: '0 0 10 10',
          refX: 9,
          refY: 5,
          markerWidth: 10,
          markerHeight: 10,
          markerUnits: 'userSpaceOnUse',
          orient: 'auto-start-reverse',
        },
        s('path', { d: 'M0,0.5 L10,5 L0,9.5 Z', class: `arrow ${kind}` }),
      ),
    );
  }
  svg.appendChild(defs);
  const world = s('g', { transform: `translate(0 ${geo.shiftY})` });
  svg.appendChild(world);

  const groupLayer = s('g', { class: 'groups' });
  for (const box of geo.groups) {
    groupLayer.appendChild(
      s(
        'g',
        { class: 'app-group', 'data-app': box.app, 'data-namespace': box.namespace },
        s('rect', { class: 'app-box', x: box.x, y: box.y, width: box.w, height: box.h, rx: 8, ry: 8 }),
        s('text', { class: 'app-label', x: box.x + 12, y: box.y + 20, text: box.app }),
        box.namespace ? s('text', { class: 'app-ns', x: box.x + box.w - 10, y: box.y + 20, 'text-anchor': 'end', text: box.namespace }) : null,
        s('title', { text: `app ${box.app} (namespace ${box.namespace || 'none'})` }),
      ),
    );
  }
  world.appendChild(groupLayer);

  const edgeLayer = s('g', { class: 'edges' });
  for (const p of geo.edges) {
    const edge = p.edge;
    const lines = labelMode === 'none' ? null : edgeLabelLines(edge, labelMode);
    edgeLayer.appendChild(
      s(
        'g',
        {
          class: `edge ${edge.health}`,
          'data-source': edge.source,
          'data-target': edge.target,
          'data-requests': edge.requests,
          'data-rps': edge.rps,
          'data-errors': edge.errors,
          'data-health': edge.health,
          'data-mtls': edge.mtls ? 'true' : 'false',
        },
        s('path', { class: 'edge-hit', d: p.d }),
        s('path', { class: 'edge-line', d: p.d, 'marker-end': `url(#arrow-${edge.health})` }),
        lines
          ? s(
              'text',
              { class: 'edge-label', x: Math.round(p.labelX), y: Math.round(p.labelY - 4), 'text-anchor': 'middle' },
              s('tspan', { class: 'edge-rate', x: Math.round(p.labelX), text: lines.first }),
              s(
                'tspan',
                { x: Math.round(p.labelX), dy: 13 },
                lines.second,
                lines.errors ? s('tspan', { class: `edge-err ${edge.health}`, text: lines.errors }) : null,
              ),
            )
          : null,
        // The padlock sits on the label; unlabelled big graphs keep mTLS in
        // the tooltip and the side panel.
        edge.mtls && lines ? lockBadge(Math.round(p.labelX) - 4, Math.round(p.labelY) - 20) : null,
        s('title', {
          text:
            `${edge.source} → ${edge.target}\n` +
            `${fmtInt(edge.requests)} requests, ${fmtInt(edge.errors)} errors (${fmtPercent(edge.errorRate)}), ${fmtRate(edge.rps)} rps` +
            `\np50 ${fmtMs(edge.p50)} · p95 ${fmtMs(edge.p95)} · p99 ${fmtMs(edge.p99)}${edge.mtls ? ' · mTLS' : ''}`,
        }),
      ),
    );
  }
  world.appendChild(edgeLayer);

  const needle = String(find || '').trim().toLowerCase();
  if (needle) svg.classList.add('finding');
  const nodeLayer = s('g', { class: 'nodes' });
  for (const node of model.nodes.values()) {
    const found = needle && (node.workload.toLowerCase().includes(needle) || node.app.toLowerCase().includes(needle));
    const pos = geo.nodes.get(node.id);
    if (!pos) continue;
    const label = node.group ? node.version : node.workload;
    const sub = node.unknown ? 'outside the mesh' : node.group ? node.workload : node.namespace;
    nodeLayer.appendChild(
      s(
        'g',
        {
          class: `node ${node.unknown ? 'unknown' : node.health}${found ? ' found' : ''}`,
          'data-id': node.id,
          'data-app': node.app,
          'data-version': node.version,
          'data-workload': node.workload,
          tabindex: 0,
          role: 'button',
          'aria-label': `${node.workload}${node.version ? ` ${node.version}` : ''}`,
        },
        s('text', { class: 'node-label', x: pos.x, y: pos.y + NODE_R + 17, 'text-anchor': 'middle', text: label }),
        sub ? s('text', { class: 'node-sub', x: pos.x, y: pos.y + NODE_R + 31, 'text-anchor': 'middle', text: sub }) : null,
        s('circle', { class: 'node-ring', cx: pos.x, cy: pos.y, r: NODE_R }),
        node.unknown
          ? s('path', { class: 'node-glyph', d: globeGlyph(pos.x, pos.y) })
          : s('circle', { class: 'node-core', cx: pos.x, cy: pos.y, r: 6 }),
        s('title', {
          text: node.unknown
            ? 'Traffic from outside the mesh'
            : `${node.workload} (${node.namespace || 'no namespace'})\n${fmtInt(node.requests)} requests in, ${fmtInt(node.errors)} errors`,
        }),
      ),
    );
  }
  world.appendChild(nodeLayer);
  return svg;
}

/** A small globe drawn with strokes, for the "outside the mesh" node. */
function globeGlyph(x, y) {
  const r = 8;
  return [
    `M${x - r},${y} a${r},${r} 0 1,0 ${2 * r},0 a${r},${r} 0 1,0 ${-2 * r},0`,
    `M${x - r},${y} H${x + r}`,
    `M${x},${y - r} c-5,4 -5,${2 * r - 8} 0,${2 * r}`,
    `M${x},${y - r} c5,4 5,${2 * r - 8} 0,${2 * r}`,
  ].join(' ');
}

// === Side panel ===

function stat(label, value, extraClass) {
  return h(
    'div',
    { class: extraClass ? `stat ${extraClass}` : 'stat' },
    h('div', { class: 'stat-value', text: value }),
    h('div', { class: 'stat-label', text: label }),
  );
}

function healthBadge(kind) {
  return h('span', { class: `badge health-${kind}`, text: HEALTH_LABEL[kind] || kind });
}

function sideHead(kind, onClose) {
  return h(
    'div',
    { class: 'side-head' },
    h('span', { class: 'side-kind', text: kind }),
    onClose ? h('button', { class: 'close', type: 'button', 'aria-label': 'Close', text: '×', onclick: onClose }) : null,
  );
}

function tracesButton(node) {
  if (!node || node.unknown) return null;
  const service = node.app || node.workload;
  return h('a', { class: 'button', href: buildHash('/traces', { service }), text: `Traces of ${service}` });
}

function errorClass(item) {
  return item.errors > 0 ? `text-${item.health}` : '';
}

function nodeName(model, id) {
  const node = model.nodes.get(id);
  if (!node) return id;
  if (node.unknown) return 'unknown (outside the mesh)';
  return node.version && node.group ? `${node.app} ${node.version}` : node.workload;
}

function edgeTable(model, edges, column, select) {
  if (edges.length === 0) return h('p', { class: 'muted small', text: 'None in this window.' });
  const tbody = h('tbody');
  for (const edge of edges) {
    tbody.appendChild(
      h(
        'tr',
        { class: 'clickable', onclick: () => select({ kind: 'edge', key: edge.key }) },
        h('td', null, h('span', { class: `dot ${edge.health}` }), nodeName(model, edge[column])),
        h('td', { class: 'num', text: fmtRate(edge.rps) }),
        h('td', { class: 'num', text: fmtInt(edge.requests) }),
        h('td', { class: `num ${errorClass(edge)}`, text: fmtPercent(edge.errorRate) }),
      ),
    );
  }
  const head = h(
    'tr',
    null,
    h('th', { text: column === 'source' ? 'From' : 'To' }),
    h('th', { class: 'num', text: 'rps' }),
    h('th', { class: 'num', text: 'req' }),
    h('th', { class: 'num', text: 'err' }),
  );
  return h('table', { class: 'mini' }, h('thead', null, head), tbody);
}

function legendItem(swatch, label, note) {
  return h('li', null, h('span', { class: swatch }), label, note ? h('span', { class: 'muted', text: ` · ${note}` }) : null);
}

function legend() {
  return h(
    'div',
    { class: 'legend' },
    h('h3', { text: 'Legend' }),
    h(
      'ul',
      null,
      legendItem('swatch healthy', 'Healthy', `edge errors ≤ ${fmtPercent(DEGRADED_RATE)}; node without 5xx`),
      legendItem('swatch degraded', 'Degraded', `edge errors > ${fmtPercent(DEGRADED_RATE)}; node with any 5xx`),
      legendItem('swatch failure', 'Failure', `edge errors ≥ ${fmtPercent(FAILURE_RATE)}; node errors ≥ ${fmtPercent(NODE_FAILURE_RATE)}`),
      legendItem('swatch idle', 'No traffic'),
      legendItem('swatch-box', 'App (its versions inside)'),
      legendItem('swatch-unknown', 'Outside the mesh'),
    ),
    h('p', {
      class: 'muted small',
      text: "Kiali's defaults: edges use its request thresholds (degraded 0.1 %, failure 20 %), nodes its health_config for HTTP 5xx (degraded above 0 %, failure 10 %). Errors are 5xx answers and requests without an answer. The padlock marks edges whose every request used mutual TLS.",
    }),
  );
}

/** Fetches once per key (the side panel re-renders on every refresh). */
function cached(loader, key, fetcher) {
  const hit = loader.cache.get(key);
  if (hit && Date.now() - hit.at < 15000) return hit.promise;
  const promise = fetcher();
  loader.cache.set(key, { at: Date.now(), promise });
  promise.catch(() => loader.cache.delete(key));
  return promise;
}

/** The RED charts of a workload, filled in when they arrive. */
function nodeRed(node, loader) {
  const box = h('div', { id: 'node-red', class: 'side-charts' }, h('p', { class: 'muted small', text: 'Loading RED charts…' }));
  cached(loader, `red:${node.id}`, () =>
    getJson('/api/weft/red', { workload: node.workload, namespace: node.namespace, ...rangeParams(loader.range) }, loader.signal),
  )
    .then((data) => box.replaceChildren(...redCharts(data)))
    .catch((err) => {
      if (!isAbort(err)) box.replaceChildren(h('p', { class: 'muted small', text: `RED unavailable: ${err.message}` }));
    });
  return box;
}

/** An edge's recent traces: errors first, then the slowest. */
function edgeTraces(model, edge, loader) {
  const source = model.nodes.get(edge.source);
  const target = model.nodes.get(edge.target);
  const tags = [];
  if (source && !source.unknown) tags.push(`weft.source.workload=${source.workload}`);
  if (target) tags.push(`weft.destination.workload=${target.workload}`);
  const lookback = loader.range.windowSecs;
  const query = new URLSearchParams();
  for (const t of tags) query.append('tag', t);
  const box = h('div', { id: 'edge-traces' }, h('p', { class: 'muted small', text: 'Loading traces…' }));
  const params = { limit: 50, order: 'longest', lookback };
  if (loader.range.endMs !== null) {
    params.end_us = loader.range.endMs * 1000;
    params.start_us = (loader.range.endMs - lookback * 1000) * 1000;
    delete params.lookback;
  }
  cached(loader, `traces:${edge.key}`, () => getJson(`/api/weft/traces?${query}`, params, loader.signal))
    .then((data) => {
      const traces = list(data.traces).slice();
      traces.sort((a, b) => (num(b.error_count) > 0) - (num(a.error_count) > 0) || num(b.duration_us) - num(a.duration_us));
      if (traces.length === 0) {
        box.replaceChildren(h('p', { class: 'muted small', text: 'No sampled traces for this edge in the window.' }));
        return;
      }
      const searchHash = `${buildHash('/traces', { order: 'longest', lookback })}&${query}`;
      box.replaceChildren(
        h(
          'table',
          { class: 'mini' },
          h('thead', null, h('tr', null, h('th', { text: 'Trace' }), h('th', { class: 'num', text: 'Duration' }), h('th', { class: 'num', text: 'Err' }))),
          h(
            'tbody',
            null,
            traces.slice(0, 10).map((t) =>
              h(
                'tr',
                { class: num(t.error_count) > 0 ? 'trace-row has-error' : 'trace-row', 'data-trace-id': str(t.trace_id) },
                h('td', null, h('a', { href: `#/trace/${encodeURIComponent(str(t.trace_id))}`, text: `${str(t.root_operation) || str(t.trace_id).slice(0, 8)}` })),
                h('td', { class: 'num', text: fmtDuration(num(t.duration_us)) }),
                h('td', { class: num(t.error_count) > 0 ? 'num text-failure' : 'num', text: fmtInt(num(t.error_count)) }),
              ),
            ),
          ),
        ),
        h('p', { class: 'small' }, h('a', { href: searchHash, text: `All ${fmtInt(num(data.total))} traces of this edge →` })),
      );
    })
    .catch((err) => {
      if (!isAbort(err)) box.replaceChildren(h('p', { class: 'muted small', text: `Traces unavailable: ${err.message}` }));
    });
  return box;
}

function renderSide(side, model, windowSecs, selection, select, loader) {
  clear(side);
  if (!model || model.nodes.size === 0) return;
  const close = () => select(null);

  if (selection && selection.kind === 'node') {
    const node = model.nodes.get(selection.key);
    const facts = node.unknown
      ? h('p', { class: 'muted small', text: 'Requests that entered the mesh from a client without a weft sidecar.' })
      : h(
          'dl',
          { class: 'facts' },
          h('dt', { text: 'App' }),
          h('dd', { text: node.app || '—' }),
          h('dt', { text: 'Version' }),
          h('dd', { text: node.version || '—' }),
          h('dt', { text: 'Namespace' }),
          h('dd', { text: node.namespace || '—' }),
          h('dt', { text: 'Health' }),
          h('dd', null, healthBadge(node.health)),
        );
    const stats = node.unknown
      ? null
      : h(
          'div',
          { class: 'stats' },
          stat('requests in', fmtInt(node.requests)),
          stat('errors', fmtInt(node.errors), errorClass(node)),
          stat('error rate', fmtPercent(node.requests > 0 ? node.errors / node.requests : 0)),
          stat('rps in', fmtRate(node.rps)),
          stat('p99', fmtMs(node.p99)),
        );
    const service = node.app || node.workload;
    add(
      side,
      sideHead(node.unknown ? 'Source' : 'Workload', close),
      h('h2', { class: 'side-title', text: node.workload }),
      facts,
      stats,
      node.unknown
        ? null
        : h(
            'div',
            { class: 'link-row' },
            h('a', { class: 'button small', href: buildHash(`/service/${encodeURIComponent(service)}`, { window: windowSecs }), text: `RED of ${service}` }),
            h('a', { class: 'button small', href: buildHash('/split', { service, window: windowSecs }), text: 'Canary split' }),
            h('a', { class: 'button small', href: buildHash('/graph', { focus: service, window: windowSecs }), text: 'Focus' }),
          ),
      node.unknown ? null : nodeRed(node, loader),
      h('h3', { text: 'Inbound' }),
      edgeTable(model, model.edges.filter((e) => e.target === node.id), 'source', select),
      h('h3', { text: 'Outbound' }),
      edgeTable(model, model.edges.filter((e) => e.source === node.id), 'target', select),
      tracesButton(node),
    );
    return;
  }

  if (selection && selection.kind === 'edge') {
    const edge = model.edges.find((e) => e.key === selection.key);
    const target = model.nodes.get(edge.target);
    const goTo = (id) => (event) => {
      event.preventDefault();
      select({ kind: 'node', key: id });
    };
    add(
      side,
      sideHead('Edge', close),
      h('h2', { class: 'side-title' }, nodeName(model, edge.source), h('span', { class: 'arrow-text', text: ' → ' }), nodeName(model, edge.target)),
      h('dl', { class: 'facts' }, h('dt', { text: 'Health' }), h('dd', null, healthBadge(edge.health))),
      h(
        'div',
        { class: 'stats' },
        stat('rps', fmtRate(edge.rps)),
        stat('requests', fmtInt(edge.requests)),
        stat('errors', fmtInt(edge.errors), errorClass(edge)),
        stat('error rate', fmtPercent(edge.errorRate)),
        stat('p50', fmtMs(edge.p50)),
        stat('p95', fmtMs(edge.p95)),
        stat('p99', fmtMs(edge.p99)),
      ),
      h('p', { class: 'small' }, edge.mtls ? 'Every request over mutual TLS (connection_security_policy="mutual_tls").' : 'Not (all) over mutual TLS.'),
      edge.share === undefined
        ? null
        : h(
            'p',
            { class: 'small' },
            h('strong', { text: fmtPercent(edge.share) }),
            ` of the requests from ${nodeName(model, edge.source)} to ${target.app} went to ${target.version}.`,
          ),
      h(
        'p',
        { class: 'small muted' },
        h('a', { href: '#', onclick: goTo(edge.source), text: 'Source workload' }),
        ' · ',
        h('a', { href: '#', onclick: goTo(edge.target), text: 'Target workload' }),
      ),
      h('h3', { text: 'Recent traces (errors, then slowest)' }),
      edgeTraces(model, edge, loader),
      tracesButton(target),
    );
    return;
  }

  const t = model.totals;
  add(
    side,
    sideHead(`Last ${fmtWindow(windowSecs)}`),
    h('h2', { class: 'side-title', text: 'Mesh traffic' }),
    h(
      'div',
      { class: 'stats' },
      stat('ingress rps', fmtRate(t.ingressRps)),
      stat('requests', fmtInt(t.requests)),
      stat('errors', fmtInt(t.errors), t.errors > 0 ? 'text-degraded' : ''),
      stat('error rate', fmtPercent(t.requests > 0 ? t.errors / t.requests : 0)),
    ),
    h('p', { class: 'small muted', text: `${t.apps} apps · ${t.workloads} workloads · ${t.edges} edges. Click a node or an edge for details.` }),
    legend(),
  );
}
