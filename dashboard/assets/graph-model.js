// Service graph model and layout, free of DOM so it can be reasoned about
// (and tested) on its own.
//
// The graph is Kiali's "versioned app" graph: workloads are nodes, and the
// workloads of one app (same namespace and `app` label, each with a
// `version`) sit together in one app box. Layout is layered left to right:
// every app box or lone node is a unit, units get a layer by longest path from
// the sources (cycles broken by a DFS in id order), and units within a layer
// are ordered by id. The result depends only on the set of nodes and edges,
// and with the view's `memory` a unit already drawn keeps its column and
// place when others appear, so the picture does not jump on refresh.

/** Node id the collector uses for traffic from outside the mesh. */
export const UNKNOWN = 'unknown';

// Health colours follow Kiali's defaults for request errors on graph edges
// (kiali frontend `REQUESTS_THRESHOLDS`: degraded 0.1 %, failure 20 %):
//   error rate >= 20 %   -> failure  (red)
//   error rate >  0.1 %  -> degraded (orange)
//   otherwise            -> healthy  (green)
// Nodes or edges without requests in the window are idle (grey).
export const FAILURE_RATE = 0.2;
export const DEGRADED_RATE = 0.001;

// Node health follows Kiali's default `health_config.rate` for HTTP 5xx
// (degraded 0 %, failure 10 %: any error degrades, 10 % fails).
export const NODE_FAILURE_RATE = 0.1;

export function health(requests, errors) {
  if (!(requests > 0)) return 'idle';
  const rate = errors / requests;
  if (rate >= FAILURE_RATE) return 'failure';
  if (rate > DEGRADED_RATE) return 'degraded';
  return 'healthy';
}

export function nodeHealth(requests, errors) {
  if (!(requests > 0)) return 'idle';
  const rate = errors / requests;
  if (rate >= NODE_FAILURE_RATE) return 'failure';
  if (errors > 0) return 'degraded';
  return 'healthy';
}

function quantile(value) {
  const n = Number(value);
  return value === null || value === undefined || !Number.isFinite(n) ? null : n;
}

/**
 * Keeps the part of a model the user asked for:
 *   hide   comma-separated substrings; matching nodes (workload or app) go
 *   focus  an app or workload name; only it and its direct neighbours stay
 * Returns a new model built from the kept nodes and edges.
 */
export function filterModel(data, { hide, focus }) {
  const hidden = String(hide || '')
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  const nodes = Array.isArray(data && data.nodes) ? data.nodes : [];
  const edges = Array.isArray(data && data.edges) ? data.edges : [];
  const matches = (raw, term) => String(raw.workload || raw.id).toLowerCase().includes(term) || String(raw.app || '').toLowerCase().includes(term);
  let keep = new Set(nodes.filter((n) => n && !hidden.some((t) => matches(n, t))).map((n) => n.id));
  for (const e of edges) {
    for (const id of [e.source, e.target]) {
      if (!nodes.some((n) => n.id === id) && !hidden.some((t) => String(id).toLowerCase().includes(t))) keep.add(id);
    }
  }
  if (focus) {
    const f = String(focus).toLowerCase();
    const centre = new Set(nodes.filter((n) => String(n.app || '').toLowerCase() === f || String(n.workload || n.id).toLowerCase() === f).map((n) => n.id));
    const near = new Set(centre);
    for (const e of edges) {
      if (centre.has(e.source)) near.add(e.target);
      if (centre.has(e.target)) near.add(e.source);
    }
    keep = new Set([...keep].filter((id) => near.has(id)));
  }
  return {
    ...data,
    nodes: nodes.filter((n) => keep.has(n.id)),
    edges: edges.filter((e) => keep.has(e.source) && keep.has(e.target)),
  };
}

function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function asNumber(value) {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function asString(value) {
  return typeof value === 'string' ? value : '';
}

/** Builds a node for an id that appears only in edges. */
function syntheticNode(id) {
  if (id === UNKNOWN) {
    return { id, workload: UNKNOWN, namespace: '', app: '', version: '', requests: 0, errors: 0 };
  }
  const slash = id.indexOf('/');
  const namespace = slash > 0 ? id.slice(0, slash) : '';
  const workload = slash > 0 ? id.slice(slash + 1) : id;
  return { id, workload, namespace, app: '', version: '', requests: 0, errors: 0 };
}

/**
 * Normalises the API answer of GET /api/weft/graph into
 * { nodes: Map<id, node>, edges: [edge], groups: Map<key, group>, totals }.
 */
export function buildModel(data) {
  const nodes = new Map();
  for (const raw of Array.isArray(data && data.nodes) ? data.nodes : []) {
    if (!raw || typeof raw.id !== 'string' || raw.id === '') continue;
    nodes.set(raw.id, {
      id: raw.id,
      workload: asString(raw.workload) || raw.id,
      namespace: asString(raw.namespace),
      app: asString(raw.app),
      version: asString(raw.version),
      requests: asNumber(raw.requests),
      errors: asNumber(raw.errors),
      rps: asNumber(raw.rps),
      p50: quantile(raw.p50_ms),
      p95: quantile(raw.p95_ms),
      p99: quantile(raw.p99_ms),
    });
  }

  const edgesByKey = new Map();
  for (const raw of Array.isArray(data && data.edges) ? data.edges : []) {
    if (!raw || typeof raw.source !== 'string' || typeof raw.target !== 'string') continue;
    if (raw.source === '' || raw.target === '') continue;
    for (const id of [raw.source, raw.target]) {
      if (!nodes.has(id)) nodes.set(id, syntheticNode(id));
    }
    const key = `${raw.source}\u0000${raw.target}`;
    const edge = edgesByKey.get(key) || { key, source: raw.source, target: raw.target, requests: 0, errors: 0, rps: 0, mtls: true };
    edge.requests += asNumber(raw.requests);
    edge.errors += asNumber(raw.errors);
    edge.rps += asNumber(raw.rps);
    edge.p50 = quantile(raw.p50_ms);
    edge.p95 = quantile(raw.p95_ms);
    edge.p99 = quantile(raw.p99_ms);
    edge.mtls = edge.mtls && raw.mtls === true;
    edgesByKey.set(key, edge);
  }
  const edges = [...edgesByKey.values()].sort((a, b) => cmp(a.source, b.source) || cmp(a.target, b.target));

  // App boxes: workloads that carry both an app and a version label.
  const groups = new Map();
  for (const node of nodes.values()) {
    node.unknown = node.id === UNKNOWN;
    node.group = !node.unknown && node.app !== '' && node.version !== '' ? `${node.namespace}/${node.app}` : null;
    node.health = node.unknown ? 'idle' : nodeHealth(node.requests, node.errors);
    if (node.group) {
      let group = groups.get(node.group);
      if (!group) {
        group = { key: node.group, app: node.app, namespace: node.namespace, nodeIds: [] };
        groups.set(node.group, group);
      }
      group.nodeIds.push(node.id);
    }
  }
  for (const group of groups.values()) {
    group.nodeIds.sort((a, b) => cmp(nodes.get(a).version, nodes.get(b).version) || cmp(a, b));
  }

  // Traffic split: the share of a source's requests to one app that each
  // version receives (Kiali's "traffic distribution"), shown when the
  // source reaches more than one version.
  const toApp = new Map();
  for (const edge of edges) {
    const group = nodes.get(edge.target).group;
    edge.health = health(edge.requests, edge.errors);
    edge.errorRate = edge.requests > 0 ? edge.errors / edge.requests : 0;
    if (!group) continue;
    const key = `${edge.source}\u0000${group}`;
    const bucket = toApp.get(key) || { requests: 0, edges: [] };
    bucket.requests += edge.requests;
    bucket.edges.push(edge);
    toApp.set(key, bucket);
  }
  for (const bucket of toApp.values()) {
    if (bucket.edges.length < 2 || bucket.requests === 0) continue;
    for (const edge of bucket.edges) edge.share = edge.requests / bucket.requests;
  }

  let requests = 0;
  let errors = 0;
  let ingressRps = 0;
  for (const edge of edges) {
    requests += edge.requests;
    errors += edge.errors;
    if (edge.source === UNKNOWN) ingressRps += edge.rps;
  }
  const totals = {
    workloads: [...nodes.values()].filter((n) => !n.unknown).length,
    apps: new Set([...nodes.values()].filter((n) => !n.unknown).map((n) => `${n.namespace}/${n.app || n.workload}`)).size,
    edges: edges.length,
    requests,
    errors,
    ingressRps,
  };
  return { nodes, edges, groups, totals };
}

// Geometry, in SVG user units (px).
export const NODE_R = 18;
const UNIT_W = 132;
const ROW_H = 92;
const GROUP_HEAD = 30;
const GROUP_PAD = 6;
const COL_GAP = 140;
const UNIT_GAP = 34;
const MARGIN = 24;
const NODE_TOP = 30; // from the top of a row to the node centre

/**
 * Positions units, nodes and edges. Returns
 * { width, height, nodes: Map<id,{x,y}>, groups: [{key,x,y,w,h}], edges: [{edge, d, labelX, labelY}] }.
 */
export function layout(model, memory) {
  const { nodes, edges, groups } = model;
  const unitOf = (id) => {
    const node = nodes.get(id);
    return node.group ? `app:${node.group}` : `node:${id}`;
  };
  const sortKey = (unit) => unit.slice(unit.indexOf(':') + 1);

  const unitIds = [...new Set([...nodes.keys()].map(unitOf))].sort((a, b) => cmp(sortKey(a), sortKey(b)) || cmp(a, b));
  const successors = new Map(unitIds.map((u) => [u, new Set()]));
  const indegree = new Map(unitIds.map((u) => [u, 0]));
  for (const edge of edges) {
    const from = unitOf(edge.source);
    const to = unitOf(edge.target);
    if (from === to || successors.get(from).has(to)) continue;
    successors.get(from).add(to);
    indegree.set(to, indegree.get(to) + 1);
  }
  const order = (set) => [...set].sort((a, b) => cmp(sortKey(a), sortKey(b)) || cmp(a, b));

  // Break cycles: DFS from the sources first, then from everything else, in
  // id order; an edge back to a unit still on the DFS stack is dropped.
  const state = new Map();
  const dag = new Map(unitIds.map((u) => [u, []]));
  const roots = unitIds.filter((u) => indegree.get(u) === 0).concat(unitIds);
  for (const root of roots) {
    if (state.has(root)) continue;
    state.set(root, 1);
    const stack = [{ unit: root, next: order(successors.get(root)), i: 0 }];
    while (stack.length > 0) {
      const frame = stack[stack.length - 1];
      if (frame.i >= frame.next.length) {
        state.set(frame.unit, 2);
        stack.pop();
        continue;
      }
      const to = frame.next[frame.i++];
      const seen = state.get(to);
      if (seen === 1) continue; // back edge
      dag.get(frame.unit).push(to);
      if (seen === undefined) {
        state.set(to, 1);
        stack.push({ unit: to, next: order(successors.get(to)), i: 0 });
      }
    }
  }

  // Longest-path layering over the DAG (Kahn's order).
  const layer = new Map(unitIds.map((u) => [u, 0]));
  const remaining = new Map(unitIds.map((u) => [u, 0]));
  for (const targets of dag.values()) for (const t of targets) remaining.set(t, remaining.get(t) + 1);
  const queue = unitIds.filter((u) => remaining.get(u) === 0);
  for (let qi = 0; qi < queue.length; qi++) {
    const u = queue[qi];
    for (const t of dag.get(u)) {
      layer.set(t, Math.max(layer.get(t), layer.get(u) + 1));
      remaining.set(t, remaining.get(t) - 1);
      if (remaining.get(t) === 0) queue.push(t);
    }
  }

  // Stability across refreshes (`memory`, kept by the view): a unit seen
  // before keeps its column and its place in it; new units go below the
  // known ones. Without memory: columns ordered by id.
  if (memory) {
    for (const u of unitIds) {
      const known = memory.units.get(u);
      if (known) layer.set(u, known.layer);
    }
  }
  const columns = [];
  for (const u of unitIds) {
    const l = layer.get(u);
    (columns[l] ||= []).push(u);
  }
  if (memory) {
    const rank = (u) => (memory.units.has(u) ? memory.units.get(u).rank : Infinity);
    for (const col of columns) if (col) col.sort((a, b) => rank(a) - rank(b) || cmp(a, b));
    columns.forEach((col, l) => {
      if (!col) return;
      for (const u of col) {
        if (!memory.units.has(u)) memory.units.set(u, { layer: l, rank: memory.next++ });
      }
    });
  }
  const unitHeight = (u) => {
    if (!u.startsWith('app:')) return ROW_H;
    return GROUP_HEAD + groups.get(u.slice(4)).nodeIds.length * ROW_H + GROUP_PAD;
  };
  const columnHeight = (col) => col.reduce((sum, u) => sum + unitHeight(u), 0) + UNIT_GAP * Math.max(0, col.length - 1);
  const tallest = Math.max(0, ...columns.map((col) => (col ? columnHeight(col) : 0)));

  const positions = new Map();
  const boxes = [];
  let bottom = MARGIN + tallest;
  columns.forEach((col, l) => {
    if (!col) return;
    const x = MARGIN + l * (UNIT_W + COL_GAP);
    // Columns are centred the first time; after that a column keeps its
    // top (memory), so growth elsewhere moves nothing already drawn.
    let y = MARGIN + (tallest - columnHeight(col)) / 2;
    if (memory) {
      memory.tops ||= new Map();
      if (memory.tops.has(l)) y = memory.tops.get(l);
      else memory.tops.set(l, y);
    }
    for (const u of col) {
      const h = unitHeight(u);
      if (u.startsWith('app:')) {
        const group = groups.get(u.slice(4));
        boxes.push({ key: group.key, app: group.app, namespace: group.namespace, x, y, w: UNIT_W, h });
        group.nodeIds.forEach((id, i) => {
          positions.set(id, { x: x + UNIT_W / 2, y: y + GROUP_HEAD + i * ROW_H + NODE_TOP });
        });
      } else {
        positions.set(u.slice(5), { x: x + UNIT_W / 2, y: y + NODE_TOP });
      }
      y += h + UNIT_GAP;
    }
    bottom = Math.max(bottom, y - UNIT_GAP);
  });

  const paths = edges.map((edge) => ({ edge, ...edgePath(positions.get(edge.source), positions.get(edge.target)) }));

  // Arcs for backward edges may rise above the first row: shift everything down.
  let minY = MARGIN;
  for (const p of paths) minY = Math.min(minY, p.top - 12);
  const shiftY = MARGIN - minY;
  const width = MARGIN * 2 + Math.max(1, columns.length) * UNIT_W + Math.max(0, columns.length - 1) * COL_GAP;
  const height = bottom + MARGIN + shiftY;
  return { width, height, shiftY, nodes: positions, groups: boxes, edges: paths };
}

const r1 = (v) => Math.round(v * 10) / 10;

/** The SVG path of one edge plus where its label goes. */
function edgePath(a, b) {
  const R = NODE_R;
  if (a === b || (a.x === b.x && a.y === b.y)) {
    // A workload calling itself: a small loop on the right of the node.
    const sx = a.x + R * 0.7;
    return {
      d:
        `M${r1(sx)},${r1(a.y - R * 0.7)} ` +
        `C${r1(a.x + R * 3.4)},${r1(a.y - R * 2.2)} ${r1(a.x + R * 3.4)},${r1(a.y + R * 2.2)} ${r1(sx + 2)},${r1(a.y + R * 0.75)}`,
      labelX: a.x + R * 3.9,
      labelY: a.y - R * 1.2,
      top: a.y - R * 2.2 - 24,
    };
  }
  if (b.x > a.x + 1) {
    // Forward: a smooth S-curve from the right of the source to the left of the target.
    const sx = a.x + R + 1;
    const ex = b.x - R - 3;
    const dx = (ex - sx) / 2;
    return {
      d: `M${r1(sx)},${r1(a.y)} C${r1(sx + dx)},${r1(a.y)} ${r1(ex - dx)},${r1(b.y)} ${r1(ex)},${r1(b.y)}`,
      labelX: (sx + ex) / 2,
      labelY: (a.y + b.y) / 2,
      top: Math.min(a.y, b.y),
    };
  }
  if (Math.abs(b.x - a.x) <= 1) {
    // Same column (e.g. v1 -> v2 of one app): bow out to the right.
    const sx = a.x + R + 1;
    const ex = b.x + R + 3;
    const bow = 70;
    const c1x = sx + bow;
    const c2x = ex + bow;
    return {
      d: `M${r1(sx)},${r1(a.y)} C${r1(c1x)},${r1(a.y)} ${r1(c2x)},${r1(b.y)} ${r1(ex)},${r1(b.y)}`,
      labelX: (sx + 3 * c1x + 3 * c2x + ex) / 8,
      labelY: (a.y + b.y) / 2,
      top: Math.min(a.y, b.y),
    };
  }
  // Backward (a cycle): arc over the top.
  const sy = a.y - R - 1;
  const ey = b.y - R - 3;
  const lift = 60 + Math.abs(a.x - b.x) * 0.12;
  const cy = Math.min(sy, ey) - lift;
  return {
    d: `M${r1(a.x)},${r1(sy)} C${r1(a.x)},${r1(cy)} ${r1(b.x)},${r1(cy)} ${r1(b.x)},${r1(ey)}`,
    labelX: (a.x + b.x) / 2,
    labelY: (sy + 3 * cy + 3 * cy + ey) / 8,
    top: (sy + 3 * cy + 3 * cy + ey) / 8 - 24,
  };
}
