// Trace search view: #/traces?service=&operation=&limit=20&lookback=3600
//
// DOM contract: each result is tr.trace-row[data-trace-id]; clicking it opens
// #/trace/<traceId>.

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
const DEFAULT_LOOKBACK = 3600;
const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 1000;

function parseLimit(text) {
  const limit = Number.parseInt(text || '', 10);
  return Number.isFinite(limit) && limit > 0 ? Math.min(limit, MAX_LIMIT) : DEFAULT_LIMIT;
}

function parseQuery(params) {
  const lookback = Number.parseInt(params.get('lookback') || '', 10);
  return {
    service: params.get('service') || '',
    operation: params.get('operation') || '',
    limit: parseLimit(params.get('limit')),
    lookback: Number.isFinite(lookback) && lookback > 0 ? lookback : DEFAULT_LOOKBACK,
  };
}

function lookbackLabel(seconds) {
  const known = LOOKBACKS.find(([value]) => value === seconds);
  return known ? known[1].toLowerCase() : `last ${fmtDuration(seconds * 1e6)}`;
}

function field(label, id, control, extra) {
  return h('div', { class: extra ? `field field-${extra}` : 'field' }, h('label', { for: id, text: label }), control);
}

function openTrace(id) {
  navigate(`#/trace/${encodeURIComponent(id)}`);
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
  const operationInput = h('input', {
    id: 'q-operation',
    name: 'operation',
    type: 'text',
    value: query.operation,
    placeholder: 'e.g. GET /price',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const lookbackSelect = h(
    'select',
    { id: 'q-lookback', name: 'lookback' },
    LOOKBACKS.map(([value, label]) => h('option', { value, text: label, selected: value === query.lookback })),
  );
  if (!LOOKBACKS.some(([value]) => value === query.lookback)) {
    const label = `Last ${fmtDuration(query.lookback * 1e6)}`;
    lookbackSelect.appendChild(h('option', { value: query.lookback, text: label, selected: true }));
  }
  const limitInput = h('input', { id: 'q-limit', name: 'limit', type: 'number', min: 1, max: MAX_LIMIT, value: query.limit });

  const form = h(
    'form',
    { class: 'search-form card', autocomplete: 'off' },
    field('Service', 'q-service', serviceSelect),
    field('Operation', 'q-operation', operationInput, 'grow'),
    field('Lookback', 'q-lookback', lookbackSelect),
    field('Limit', 'q-limit', limitInput, 'narrow'),
    h('div', { class: 'field field-submit' }, h('button', { class: 'button primary', type: 'submit', text: 'Find traces' })),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate(
      buildHash('/traces', {
        service: serviceSelect.value,
        operation: operationInput.value.trim(),
        limit: parseLimit(limitInput.value),
        lookback: lookbackSelect.value,
      }),
    );
  });

  const results = h('section', { class: 'results card', 'aria-live': 'polite' }, h('p', { class: 'muted loading-line', text: 'Searching…' }));
  root.append(
    h('div', { class: 'toolbar' }, h('h1', { class: 'view-title', text: 'Traces' }), h('span', { class: 'toolbar-hint', text: 'Newest first' })),
    form,
    results,
  );

  // The service list and the search run in parallel; the view is "ready"
  // only once both are in, so the select is complete when tests look at it.
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

  // --- results ---
  let data;
  try {
    const params = { service: query.service, operation: query.operation, limit: query.limit, lookback: query.lookback };
    data = await getJson('/api/weft/traces', params, ctx.signal);
  } catch (err) {
    if (isAbort(err)) throw err;
    results.replaceChildren(message('error', 'Could not search traces', err.message));
    await servicesLoaded;
    ctx.setState('error');
    return;
  }

  const traces = list(data.traces).filter((t) => t && typeof t.trace_id === 'string');
  const total = Math.max(num(data.total), traces.length);
  if (traces.length === 0) {
    const filters = [query.service && `service ${query.service}`, query.operation && `operation “${query.operation}”`]
      .filter(Boolean)
      .join(' and ');
    const where = filters ? `for ${filters} ` : '';
    const detail = `Nothing ${where}in the ${lookbackLabel(query.lookback)}. Try a longer lookback or fewer filters.`;
    results.replaceChildren(message('empty', 'No traces found', detail));
    await servicesLoaded;
    ctx.setState('empty');
    return;
  }

  registerServices(traces.flatMap((t) => list(t.services).map(str)));
  const maxDuration = Math.max(1, ...traces.map((t) => num(t.duration_us)));
  const now = Date.now();
  const tbody = h('tbody', null, traces.map((t) => traceRow(t, maxDuration, now)));
  tbody.addEventListener('click', (event) => {
    if (!(event.target instanceof Element)) return;
    if (event.target.closest('a')) return; // the link navigates by itself
    const row = event.target.closest('tr.trace-row');
    if (row) openTrace(row.dataset.traceId);
  });
  tbody.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || !(event.target instanceof Element)) return;
    const row = event.target.closest('tr.trace-row');
    if (row) openTrace(row.dataset.traceId);
  });

  const more = traces.length < total ? ' · raise the limit to see more' : '';
  const head = h(
    'tr',
    null,
    h('th', { text: 'Start time' }),
    h('th', { text: 'Root' }),
    h('th', { text: 'Duration' }),
    h('th', { class: 'num', text: 'Spans' }),
    h('th', { class: 'num', text: 'Errors' }),
    h('th', { text: 'Services' }),
  );
  results.replaceChildren(
    h(
      'div',
      { class: 'results-head' },
      h('span', { class: 'results-count' }, h('strong', { text: fmtInt(traces.length) }), ` of ${fmtInt(total)} trace${total === 1 ? '' : 's'}`),
      h('span', { class: 'muted small', text: ` in the ${lookbackLabel(query.lookback)}${more}` }),
    ),
    h('table', { class: 'table traces-table' }, h('thead', null, head), tbody),
  );
  await servicesLoaded;
  ctx.setState('ready');
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
  const durationPct = Math.max(0.5, (duration / maxDuration) * 100);
  return h(
    'tr',
    { class: errors > 0 ? 'trace-row has-error' : 'trace-row', 'data-trace-id': id, tabindex: 0 },
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
    h('td', { class: 'col-services' }, services.map((name) => h('span', { class: `svc-chip ${colourClass(name)}`, text: name }))),
  );
}
