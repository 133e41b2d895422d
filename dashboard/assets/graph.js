// Service graph view: #/graph?window=SECONDS
//
// DOM contract (browser tests rely on it):
//   g.app-group[data-app]                      one box per versioned app
//   g.node[data-id][data-app][data-version]    one per workload, with a <text> label
//   g.edge[data-source][data-target][data-requests]

import { getJson, isAbort } from './api.js';
import { add, clear, h, message, s } from './dom.js';
import { fmtClock, fmtInt, fmtPercent, fmtRate, fmtWindow } from './format.js';
import { DEGRADED_RATE, FAILURE_RATE, NODE_R, buildModel, layout } from './graph-model.js';
import { buildHash } from './router.js';

const WINDOWS = [60, 300, 900, 3600, 21600, 86400];
const DEFAULT_WINDOW = 300;
const REFRESH_MS = 5000;
const HEALTH_LABEL = { healthy: 'Healthy', degraded: 'Degraded', failure: 'Failure', idle: 'No traffic' };

function parseWindow(text) {
  const n = Number.parseInt(text || '', 10);
  return Number.isFinite(n) && n >= 10 && n <= 30 * 86400 ? n : DEFAULT_WINDOW;
}

export async function mountGraph(root, ctx) {
  const windowSecs = parseWindow(ctx.params.get('window'));
  ctx.setTitle('Service graph');

  const picker = h(
    'div',
    { class: 'segmented', role: 'group', 'aria-label': 'Time window' },
    WINDOWS.map((w) =>
      h('a', {
        class: w === windowSecs ? 'seg active' : 'seg',
        href: buildHash('/graph', { window: w }),
        'aria-current': w === windowSecs ? 'true' : null,
        text: fmtWindow(w),
      }),
    ),
  );
  const status = h('span', { class: 'refresh-status', role: 'status' }, 'Loading…');
  root.appendChild(
    h(
      'div',
      { class: 'toolbar' },
      h('h1', { class: 'view-title', text: 'Service graph' }),
      h('span', { class: 'toolbar-hint', text: 'Versioned app graph · workloads grouped by app' }),
      h('div', { class: 'toolbar-spacer' }),
      status,
      h('span', { class: 'toolbar-label', text: 'Window' }),
      picker,
    ),
  );
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
    renderSide(side, model, windowSecs, selection, select);
  };

  canvas.addEventListener('click', (event) => {
    const target = event.target instanceof Element ? event.target.closest('g.node, g.edge') : null;
    if (!target) return select(null);
    if (target.classList.contains('node')) select({ kind: 'node', key: target.dataset.id });
    else select({ kind: 'edge', key: `${target.dataset.source}\u0000${target.dataset.target}` });
  });
  canvas.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' && event.key !== ' ') return;
    const target = event.target instanceof Element ? event.target.closest('g.node') : null;
    if (!target) return;
    event.preventDefault();
    select({ kind: 'node', key: target.dataset.id });
  });

  const refresh = async () => {
    if (document.hidden && loadedOnce) {
      timer = setTimeout(refresh, REFRESH_MS);
      return;
    }
    try {
      const data = await getJson('/api/weft/graph', { window: windowSecs }, ctx.signal);
      model = buildModel(data);
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
        const svg = renderSvg(model);
        clear(canvas).appendChild(svg);
        fitToWidth(svg, canvas);
      }
      select(selection);
      status.className = 'refresh-status ok';
      status.textContent = `Updated ${fmtClock(Date.now())} · every 5 s`;
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
    if (!ctx.signal.aborted) timer = setTimeout(refresh, REFRESH_MS);
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

function edgeLabelLines(edge) {
  const first = `${fmtRate(edge.rps)} rps${edge.share !== undefined ? ` · ${fmtPercent(edge.share)}` : ''}`;
  const second = `${fmtInt(edge.requests)} req`;
  const errors = edge.errors > 0 ? ` · ${fmtPercent(edge.errorRate)} err` : '';
  return { first, second, errors };
}

function renderSvg(model) {
  const geo = layout(model);
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
    const lines = edgeLabelLines(edge);
    edgeLayer.appendChild(
      s(
        'g',
        {
          class: `edge ${edge.health}`,
          'data-source': edge.source,
          'data-target': edge.target,
          'data-requests': edge.requests,
          'data-errors': edge.errors,
          'data-health': edge.health,
        },
        s('path', { class: 'edge-hit', d: p.d }),
        s('path', { class: 'edge-line', d: p.d, 'marker-end': `url(#arrow-${edge.health})` }),
        s(
          'text',
          { class: 'edge-label', x: Math.round(p.labelX), y: Math.round(p.labelY - 4), 'text-anchor': 'middle' },
          s('tspan', { class: 'edge-rate', x: Math.round(p.labelX), text: lines.first }),
          s(
            'tspan',
            { x: Math.round(p.labelX), dy: 13 },
            lines.second,
            lines.errors ? s('tspan', { class: `edge-err ${edge.health}`, text: lines.errors }) : null,
          ),
        ),
        s('title', {
          text:
            `${edge.source} → ${edge.target}\n` +
            `${fmtInt(edge.requests)} requests, ${fmtInt(edge.errors)} errors (${fmtPercent(edge.errorRate)}), ${fmtRate(edge.rps)} rps`,
        }),
      ),
    );
  }
  world.appendChild(edgeLayer);

  const nodeLayer = s('g', { class: 'nodes' });
  for (const node of model.nodes.values()) {
    const pos = geo.nodes.get(node.id);
    if (!pos) continue;
    const label = node.group ? node.version : node.workload;
    const sub = node.unknown ? 'outside the mesh' : node.group ? node.workload : node.namespace;
    nodeLayer.appendChild(
      s(
        'g',
        {
          class: `node ${node.unknown ? 'unknown' : node.health}`,
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
      legendItem('swatch healthy', 'Healthy', `errors ≤ ${fmtPercent(DEGRADED_RATE)}`),
      legendItem('swatch degraded', 'Degraded', `errors > ${fmtPercent(DEGRADED_RATE)}`),
      legendItem('swatch failure', 'Failure', `errors ≥ ${fmtPercent(FAILURE_RATE)}`),
      legendItem('swatch idle', 'No traffic'),
      legendItem('swatch-box', 'App (its versions inside)'),
      legendItem('swatch-unknown', 'Outside the mesh'),
    ),
    h('p', {
      class: 'muted small',
      text: 'Edge labels: requests per second (and the split between versions), requests in the window, error rate.',
    }),
  );
}

function renderSide(side, model, windowSecs, selection, select) {
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
        );
    add(
      side,
      sideHead(node.unknown ? 'Source' : 'Workload', close),
      h('h2', { class: 'side-title', text: node.workload }),
      facts,
      stats,
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
      ),
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
