// Trace search view:
//   #/traces?service=&operation=&tag=k%3Dv&tag=...&min_duration=100ms&max_duration=2s
//            &lookback=3600 (or &start_us=&end_us=)&limit=20&offset=0&order=newest
//
// DOM contract: each result is tr.trace-row[data-trace-id]; clicking it opens
// #/trace/<traceId>. The scatter plot has one circle.scatter-dot per result.
// .results-count[data-total] holds the store's total of matches (at least
// that many when data-exact is "false"); data-order-exact is "false" when a
// search ordered by duration or span count is sorted among the newest
// data-total matches only (the store sorts a bounded number of candidate
// traces).

import { getJson, isAbort, list, num, str } from './api.js';
import { h, message, s } from './dom.js';
import { colourClass, fmtAgo, fmtDateTime, fmtDuration, fmtInt, registerServices } from './format.js';
import { buildHash, navigate } from './router.js';

const LOOKBACKS = [
  [300, 'Last 5 minutes'],
  [900, 'Last 15 minutes'],
  [3600, 'Last hour'],
  [21600, 'Last 6 hours'],
  [86400, 'Last 24 hours'],
  [172800, 'Last 2 days'],
  [604800, 'Last 7 days'],
];
const ORDERS = [
  ['newest', 'Newest first'],
  ['oldest', 'Oldest first'],
  ['longest', 'Longest first'],
  ['shortest', 'Shortest first'],
  ['most_spans', 'Most spans'],
];
const DEFAULT_LOOKBACK = 3600;
const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 1000;

function parseLimit(text) {
  const limit = Number.parseInt(text || '', 10);
  return Number.isFinite(limit) && limit > 0 ? Math.min(limit, MAX_LIMIT) : DEFAULT_LIMIT;
}

/** "250ms", "1.5s", "2m", "800us", "40" (ms) -> microseconds, or null. */
export function parseDuration(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$/.exec(String(text || ''));
  if (!m) return null;
  const factor = { us: 1, µs: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 }[m[2] || 'ms'];
  return Math.round(Number(m[1]) * factor);
}

/** "a=b c=d" -> ["a=b", "c=d"]; a value may be double-quoted to hold spaces. */
export function parseTags(text) {
  const tags = [];
  const re = /([^\s=]+)=("([^"]*)"|\S*)/g;
  let m;
  while ((m = re.exec(String(text || ''))) !== null) {
    tags.push(`${m[1]}=${m[3] !== undefined ? m[3] : m[2]}`);
  }
  return tags;
}

function tagsText(tags) {
  return tags
    .map((tag) => {
      const eq = tag.indexOf('=');
      const value = tag.slice(eq + 1);
      return /\s/.test(value) ? `${tag.slice(0, eq)}="${value}"` : tag;
    })
    .join(' ');
}

function parseQuery(params) {
  const lookback = Number.parseInt(params.get('lookback') || '', 10);
  const startUs = Number.parseInt(params.get('start_us') || '', 10);
  const endUs = Number.parseInt(params.get('end_us') || '', 10);
  const offset = Number.parseInt(params.get('offset') || '', 10);
  const order = params.get('order') || 'newest';
  return {
    service: params.get('service') || '',
    operation: params.get('operation') || '',
    tags: params.getAll('tag').filter((t) => t.includes('=')),
    minDuration: params.get('min_duration') || '',
    maxDuration: params.get('max_duration') || '',
    limit: parseLimit(params.get('limit')),
    offset: Number.isFinite(offset) && offset > 0 ? offset : 0,
    order: ORDERS.some(([o]) => o === order) ? order : 'newest',
    lookback: Number.isFinite(lookback) && lookback > 0 ? lookback : DEFAULT_LOOKBACK,
    startUs: Number.isFinite(startUs) ? startUs : null,
    endUs: Number.isFinite(endUs) ? endUs : null,
  };
}

/** The hash of a search (tags are repeated `tag` parameters). */
export function searchHash(q) {
  const base = buildHash('/traces', {
    service: q.service,
    operation: q.operation,
    min_duration: q.minDuration,
    max_duration: q.maxDuration,
    lookback: q.startUs !== null && q.startUs !== undefined ? '' : q.lookback,
    start_us: q.startUs,
    end_us: q.endUs,
    limit: q.limit,
    offset: q.offset || '',
    order: q.order && q.order !== 'newest' ? q.order : '',
  });
  const tags = (q.tags || []).map((t) => `tag=${encodeURIComponent(t)}`).join('&');
  if (!tags) return base;
  return base.includes('?') ? `${base}&${tags}` : `${base}?${tags}`;
}

function rangeLabel(q) {
  if (q.startUs !== null) return `${fmtDateTime(q.startUs)} – ${q.endUs !== null ? fmtDateTime(q.endUs) : 'now'}`;
  const known = LOOKBACKS.find(([value]) => value === q.lookback);
  return known ? known[1].toLowerCase() : `last ${fmtDuration(q.lookback * 1e6)}`;
}

function field(label, id, control, extra) {
  return h('div', { class: extra ? `field field-${extra}` : 'field' }, h('label', { for: id, text: label }), control);
}

function openTrace(id) {
  navigate(`#/trace/${encodeURIComponent(id)}`);
}

function toLocalInput(us) {
  if (us === null) return '';
  const d = new Date(us / 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export async function mountTraces(root, ctx) {
  const query = parseQuery(ctx.params);
  ctx.setTitle(query.service ? `Traces of ${query.service}` : 'Traces');

  // --- search form ---
  const serviceSelect = h(
    'select',
    { id: 'q-service', name: 'service' },
    h('option', { value: '', text: 'All services' }),
    query.service ? h('option', { value: query.service, text: query.service, selected: true }) : null,
  );
  const operationList = h('datalist', { id: 'q-operations' });
  const operationInput = h('input', {
    id: 'q-operation',
    name: 'operation',
    type: 'text',
    value: query.operation,
    list: 'q-operations',
    placeholder: 'any operation',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const tagsInput = h('input', {
    id: 'q-tags',
    name: 'tags',
    type: 'text',
    value: tagsText(query.tags),
    placeholder: 'http.response.status_code=503 weft.subset=v2',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const minInput = h('input', { id: 'q-min', name: 'min_duration', type: 'text', value: query.minDuration, placeholder: 'e.g. 100ms' });
  const maxInput = h('input', { id: 'q-max', name: 'max_duration', type: 'text', value: query.maxDuration, placeholder: 'e.g. 2s' });
  const lookbackSelect = h(
    'select',
    { id: 'q-lookback', name: 'lookback' },
    LOOKBACKS.map(([value, label]) => h('option', { value, text: label, selected: query.startUs === null && value === query.lookback })),
    h('option', { value: 'custom', text: 'Custom range', selected: query.startUs !== null }),
  );
  if (query.startUs === null && !LOOKBACKS.some(([value]) => value === query.lookback)) {
    lookbackSelect.appendChild(h('option', { value: query.lookback, text: `Last ${fmtDuration(query.lookback * 1e6)}`, selected: true }));
  }
  const startInput = h('input', { id: 'q-start', type: 'datetime-local', value: toLocalInput(query.startUs) });
  const endInput = h('input', { id: 'q-end', type: 'datetime-local', value: toLocalInput(query.endUs) });
  const custom = h('div', { class: 'field-range', hidden: query.startUs === null }, field('From', 'q-start', startInput), field('To', 'q-end', endInput));
  lookbackSelect.addEventListener('change', () => {
    custom.hidden = lookbackSelect.value !== 'custom';
  });
  const limitInput = h('input', { id: 'q-limit', name: 'limit', type: 'number', min: 1, max: MAX_LIMIT, value: query.limit });
  const orderSelect = h(
    'select',
    { id: 'q-order', name: 'order' },
    ORDERS.map(([value, label]) => h('option', { value, text: label, selected: value === query.order })),
  );
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });

  const form = h(
    'form',
    { class: 'search-form card', autocomplete: 'off' },
    field('Service', 'q-service', serviceSelect),
    field('Operation', 'q-operation', operationInput, 'grow'),
    operationList,
    field('Tags (key=value …)', 'q-tags', tagsInput, 'grow'),
    field('Min duration', 'q-min', minInput, 'narrow'),
    field('Max duration', 'q-max', maxInput, 'narrow'),
    field('Time range', 'q-lookback', lookbackSelect),
    custom,
    field('Limit', 'q-limit', limitInput, 'narrow'),
    field('Order', 'q-order', orderSelect),
    h('div', { class: 'field field-submit' }, h('button', { class: 'button primary', id: 'q-submit', type: 'submit', text: 'Find traces' })),
    formError,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const problems = [];
    for (const [input, name] of [
      [minInput, 'Min duration'],
      [maxInput, 'Max duration'],
    ]) {
      if (input.value.trim() !== '' && parseDuration(input.value) === null) problems.push(`${name} is not a duration like 250ms or 1.5s.`);
    }
    let startUs = null;
    let endUs = null;
    if (lookbackSelect.value === 'custom') {
      startUs = startInput.value ? new Date(startInput.value).getTime() * 1000 : NaN;
      endUs = endInput.value ? new Date(endInput.value).getTime() * 1000 : Date.now() * 1000;
      if (!Number.isFinite(startUs) || !(endUs > startUs)) problems.push('The custom range needs a start before its end.');
    }
    if (problems.length > 0) {
      formError.textContent = problems.join(' ');
      formError.hidden = false;
      return;
    }
    navigate(
      searchHash({
        service: serviceSelect.value,
        operation: operationInput.value.trim(),
        tags: parseTags(tagsInput.value),
        minDuration: minInput.value.trim(),
        maxDuration: maxInput.value.trim(),
        lookback: lookbackSelect.value === 'custom' ? '' : lookbackSelect.value,
        startUs,
        endUs,
        limit: parseLimit(limitInput.value),
        offset: 0,
        order: orderSelect.value,
      }),
    );
  });

  const loadOperations = (service) => {
    operationList.replaceChildren();
    if (!service) return Promise.resolve();
    return getJson('/api/weft/operations', { service }, ctx.signal)
      .then((data) => {
        operationList.replaceChildren(...list(data.operations).map((op) => h('option', { value: str(op) })));
      })
      .catch((err) => {
        if (!isAbort(err)) operationInput.title = `Operation list unavailable: ${err.message}`;
      });
  };
  serviceSelect.addEventListener('change', () => loadOperations(serviceSelect.value));

  const results = h('section', { class: 'results card', 'aria-live': 'polite' }, h('p', { class: 'muted loading-line', text: 'Searching…' }));
  root.append(
    h('div', { class: 'toolbar' }, h('h1', { class: 'view-title', text: 'Traces' }), h('span', { class: 'toolbar-hint', text: 'Search by service, operation, tags, trace duration and time' })),
    form,
    results,
  );

  const servicesLoaded = getJson('/api/weft/services', null, ctx.signal)
    .then((data) => {
      const names = list(data.services).filter((name) => typeof name === 'string' && name !== '');
      registerServices(names);
      const current = serviceSelect.value;
      const all = new Set(names);
      if (query.service) all.add(query.service);
      serviceSelect.replaceChildren(
        h('option', { value: '', text: 'All services' }),
        ...[...all].sort().map((name) => h('option', { value: name, text: name })),
      );
      serviceSelect.value = current;
    })
    .catch((err) => {
      if (!isAbort(err)) serviceSelect.title = `Service list unavailable: ${err.message}`;
    });
  const operationsLoaded = loadOperations(query.service);

  // --- results ---
  let data;
  try {
    const minUs = parseDuration(query.minDuration);
    const maxUs = parseDuration(query.maxDuration);
    const params = {
      service: query.service,
      operation: query.operation,
      min_duration_us: minUs,
      max_duration_us: maxUs,
      limit: query.limit,
      offset: query.offset,
      order: query.order,
    };
    if (query.startUs !== null) {
      params.start_us = query.startUs;
      params.end_us = query.endUs;
    } else {
      params.lookback = query.lookback;
    }
    const url = new URLSearchParams();
    for (const tag of query.tags) url.append('tag', tag);
    const path = query.tags.length > 0 ? `/api/weft/traces?${url}` : '/api/weft/traces';
    data = await getJson(path, params, ctx.signal);
  } catch (err) {
    if (isAbort(err)) throw err;
    results.replaceChildren(message('error', 'Could not search traces', err.message));
    await Promise.all([servicesLoaded, operationsLoaded]);
    ctx.setState('error');
    return;
  }

  const traces = list(data.traces).filter((t) => t && typeof t.trace_id === 'string');
  const total = Math.max(num(data.total), query.offset + traces.length);
  // The store stops counting 10,000 traces past the page: "at least".
  const exact = data.total_exact !== false;
  // Sorted among the newest `total` matches only (tags, other orders).
  const orderExact = data.order_exact !== false;
  if (traces.length === 0) {
    const filters = [
      query.service && `service ${query.service}`,
      query.operation && `operation “${query.operation}”`,
      query.tags.length > 0 && `tags ${query.tags.join(', ')}`,
    ]
      .filter(Boolean)
      .join(' and ');
    const where = filters ? `for ${filters} ` : '';
    const detail = orderExact
      ? `Nothing ${where}in the ${rangeLabel(query)}${query.offset > 0 ? ' on this page' : ''}. Try a longer time range or fewer filters.`
      : `Nothing ${where}among the newest traces of the ${rangeLabel(query)}${query.offset > 0 ? ' on this page' : ''}: this order covers only them. Order by start (newest first) to search the whole range.`;
    results.replaceChildren(message('empty', 'No traces found', detail));
    await Promise.all([servicesLoaded, operationsLoaded]);
    ctx.setState('empty');
    return;
  }

  registerServices(traces.flatMap((t) => list(t.services).map(str)));
  const maxDuration = Math.max(1, ...traces.map((t) => num(t.duration_us)));
  const now = Date.now();
  const chosen = new Set();
  const compareButton = h('a', { class: 'button small', id: 'compare-link', 'aria-disabled': 'true', text: 'Compare 2 selected' });
  const updateCompare = () => {
    const ids = [...chosen];
    if (ids.length === 2) {
      compareButton.setAttribute('href', buildHash('/compare', { a: ids[0], b: ids[1] }));
      compareButton.setAttribute('aria-disabled', 'false');
    } else {
      compareButton.removeAttribute('href');
      compareButton.setAttribute('aria-disabled', 'true');
    }
  };
  const tbody = h('tbody', null, traces.map((t) => traceRow(t, maxDuration, now)));
  tbody.addEventListener('click', (event) => {
    if (!(event.target instanceof Element)) return;
    if (event.target.closest('a')) return; // the link navigates by itself
    const box = event.target.closest('input.pick');
    if (box) {
      if (box.checked) {
        chosen.add(box.value);
        if (chosen.size > 2) {
          const first = [...chosen][0];
          chosen.delete(first);
          const other = tbody.querySelector(`input.pick[value="${first}"]`);
          if (other) other.checked = false;
        }
      } else {
        chosen.delete(box.value);
      }
      updateCompare();
      return;
    }
    const row = event.target.closest('tr.trace-row');
    if (row) openTrace(row.dataset.traceId);
  });
  tbody.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || !(event.target instanceof Element)) return;
    const row = event.target.closest('tr.trace-row');
    if (row) openTrace(row.dataset.traceId);
  });

  const sortHeader = (label, asc, desc, extra) => {
    const active = query.order === asc || query.order === desc;
    const next = query.order === desc ? asc : desc;
    const arrow = query.order === desc ? ' ▾' : query.order === asc ? ' ▴' : '';
    return h(
      'th',
      { class: extra || null, 'aria-sort': active ? (query.order === desc ? 'descending' : 'ascending') : null },
      h('a', { class: 'sort-link', href: searchHash({ ...query, order: next, offset: 0 }), text: `${label}${arrow}` }),
    );
  };
  const head = h(
    'tr',
    null,
    h('th', { class: 'col-pick', text: '' }),
    sortHeader('Start time', 'oldest', 'newest'),
    h('th', { text: 'Root' }),
    sortHeader('Duration', 'shortest', 'longest'),
    sortHeader('Spans', 'most_spans', 'most_spans', 'num'),
    h('th', { class: 'num', text: 'Errors' }),
    h('th', { text: 'Services' }),
  );
  const first = query.offset + 1;
  const last = query.offset + traces.length;
  // The pages of one search share its window (as the collector resolved it):
  // traces arriving meanwhile must not shift them.
  const pinned = Number.isFinite(data.start_us) && Number.isFinite(data.end_us)
    ? { ...query, startUs: data.start_us, endUs: data.end_us }
    : query;
  const prev = query.offset > 0 ? searchHash({ ...pinned, offset: Math.max(0, query.offset - query.limit) }) : null;
  const next = last < total ? searchHash({ ...pinned, offset: last }) : null;
  const pager = h(
    'div',
    { class: 'pager' },
    prev ? h('a', { class: 'button small', id: 'page-prev', href: prev, text: '← Newer page' }) : null,
    next ? h('a', { class: 'button small', id: 'page-next', href: next, text: 'Next page →' }) : null,
  );
  results.replaceChildren(
    h(
      'div',
      { class: 'results-head' },
      h(
        'span',
        { class: 'results-count', 'data-total': total, 'data-exact': String(exact), 'data-order-exact': String(orderExact), 'data-shown': traces.length },
        h('strong', { text: `${fmtInt(first)}–${fmtInt(last)}` }),
        exact ? ` of ${fmtInt(total)} trace${total === 1 ? '' : 's'}` : ` of ${fmtInt(total)}+ traces`,
      ),
      h('span', {
        class: 'muted small',
        text: ` in the ${rangeLabel(query)} · ${ORDERS.find(([o]) => o === query.order)[1].toLowerCase()}${orderExact ? '' : ` among the newest ${fmtInt(total)} matches`}`,
      }),
      h('span', { class: 'toolbar-spacer' }),
      compareButton,
      pager,
    ),
    scatter(traces),
    h('table', { class: 'table traces-table' }, h('thead', null, head), tbody),
  );
  await Promise.all([servicesLoaded, operationsLoaded]);
  ctx.setState('ready');
}

/** Duration against start time, one dot per result (red with errors); a dot
 * links to its trace. Axes are labelled with the extreme values. */
function scatter(traces) {
  const W = 1000;
  const H = 160;
  const PAD_L = 64;
  const PAD_B = 22;
  const starts = traces.map((t) => num(t.start_us));
  let t0 = Math.min(...starts);
  let t1 = Math.max(...starts);
  if (t1 - t0 < 1e6) {
    t0 -= 5e5;
    t1 += 5e5;
  }
  const maxD = Math.max(1, ...traces.map((t) => num(t.duration_us)));
  const maxSpans = Math.max(1, ...traces.map((t) => num(t.span_count)));
  const svg = s('svg', { class: 'scatter', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Trace durations over time' });
  svg.appendChild(s('line', { class: 'axis', x1: PAD_L, y1: H - PAD_B, x2: W - 8, y2: H - PAD_B }));
  svg.appendChild(s('line', { class: 'axis', x1: PAD_L, y1: 8, x2: PAD_L, y2: H - PAD_B }));
  svg.appendChild(s('text', { class: 'axis-label', x: PAD_L - 6, y: 16, 'text-anchor': 'end', text: fmtDuration(maxD) }));
  svg.appendChild(s('text', { class: 'axis-label', x: PAD_L - 6, y: H - PAD_B, 'text-anchor': 'end', text: '0' }));
  svg.appendChild(s('text', { class: 'axis-label', x: PAD_L, y: H - 6, text: fmtDateTime(t0).slice(11, 19) }));
  svg.appendChild(s('text', { class: 'axis-label', x: W - 8, y: H - 6, 'text-anchor': 'end', text: fmtDateTime(t1).slice(11, 19) }));
  for (const t of traces) {
    const x = PAD_L + ((num(t.start_us) - t0) / (t1 - t0)) * (W - PAD_L - 16) + 4;
    const y = H - PAD_B - (num(t.duration_us) / maxD) * (H - PAD_B - 14);
    const r = 3 + 5 * Math.sqrt(num(t.span_count) / maxSpans);
    svg.appendChild(
      s(
        'a',
        { href: `#/trace/${encodeURIComponent(t.trace_id)}` },
        s(
          'circle',
          { class: num(t.error_count) > 0 ? 'scatter-dot error' : 'scatter-dot', cx: x.toFixed(1), cy: y.toFixed(1), r: r.toFixed(1), 'data-trace-id': t.trace_id },
          s('title', { text: `${str(t.root_service)}: ${str(t.root_operation)}\n${fmtDuration(num(t.duration_us))} · ${fmtInt(num(t.span_count))} spans · ${fmtDateTime(num(t.start_us))}` }),
        ),
      ),
    );
  }
  return h('div', { class: 'scatter-wrap' }, svg);
}

/** One result row: start, root service: operation, duration (with a bar
 * relative to the longest result), span and error counts, services. */
function traceRow(t, maxDuration, now) {
  const id = t.trace_id;
  const start = num(t.start_us);
  const duration = num(t.duration_us);
  const errors = num(t.error_count);
  const rootService = str(t.root_service);
  const services = list(t.services).map(str).filter(Boolean);
  const spanCounts = list(t.service_span_counts);
  const durationPct = Math.max(0.5, (duration / maxDuration) * 100);
  return h(
    'tr',
    { class: errors > 0 ? 'trace-row has-error' : 'trace-row', 'data-trace-id': id, tabindex: 0 },
    h('td', { class: 'col-pick' }, h('input', { class: 'pick', type: 'checkbox', value: id, 'aria-label': `Select ${id} to compare` })),
    h('td', { class: 'col-time' }, h('div', { text: fmtDateTime(start) }), h('div', { class: 'muted small', text: fmtAgo(start, now) })),
    h(
      'td',
      { class: 'col-root' },
      h(
        'a',
        { class: 'trace-link', href: `#/trace/${encodeURIComponent(id)}` },
        h('span', { class: `svc-dot ${colourClass(rootService)}` }),
        h('strong', { text: rootService || '(unknown service)' }),
        ': ',
        str(t.root_operation) || '(no operation)',
      ),
      h('div', { class: 'mono muted small', text: id }),
    ),
    h(
      'td',
      { class: 'col-duration' },
      h('div', { class: 'num', text: fmtDuration(duration) }),
      s(
        'svg',
        { class: 'duration-bar', 'aria-hidden': 'true' },
        s('rect', { class: 'duration-track', x: 0, y: 0, width: '100%', height: 4, rx: 2 }),
        s('rect', { class: errors > 0 ? 'duration-fill error' : 'duration-fill', x: 0, y: 0, width: `${durationPct.toFixed(2)}%`, height: 4, rx: 2 }),
      ),
    ),
    h('td', { class: 'num', text: fmtInt(num(t.span_count)) }),
    h('td', { class: 'num' }, errors > 0 ? h('span', { class: 'badge health-failure', text: fmtInt(errors) }) : h('span', { class: 'muted', text: '0' })),
    h(
      'td',
      { class: 'col-services' },
      services.map((name, k) =>
        h('a', {
          class: `svc-chip ${colourClass(name)}`,
          href: buildHash(`/service/${encodeURIComponent(name)}`, {}),
          title: spanCounts[k] !== undefined ? `${fmtInt(num(spanCounts[k]))} spans of ${name} · RED charts` : `RED charts of ${name}`,
          text: name,
        }),
      ),
    ),
  );
}
