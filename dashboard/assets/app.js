// Entry point: picks the view from the URL hash and mounts it into <main id="view">.
//
// Each navigation replaces #view with a fresh element whose data-view names
// the view and whose data-state goes loading -> ready | empty | error once
// rendering finishes. Leaving a view aborts its fetches and timers.

import { isAbort } from './api.js';
import { h, message } from './dom.js';
import { navigate, parseHash, setRerender } from './router.js';
import { mountGraph } from './graph.js';
import { mountTraces } from './traces.js';
import { mountTrace } from './trace.js';
import { mountSplit } from './split.js';
import { mountService } from './service.js';
import { mountCompare } from './compare.js';

const VIEWS = {
  graph: { tab: 'graph', mount: mountGraph },
  traces: { tab: 'traces', mount: mountTraces },
  trace: { tab: 'traces', mount: mountTrace },
  compare: { tab: 'traces', mount: mountCompare },
  split: { tab: 'split', mount: mountSplit },
  service: { tab: 'service', mount: mountService },
};

let current = null;

function render() {
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;

  const { segments, params } = parseHash(window.location.hash);
  const name = segments[0] || 'graph';
  const view = VIEWS[name];

  const viewName = view ? name : 'unknown';
  const root = h('main', { id: 'view', class: `view view-${viewName}`, 'data-view': viewName, 'data-state': 'loading' });
  const old = document.getElementById('view');
  if (old) old.replaceWith(root);
  else document.body.appendChild(root);

  for (const tab of document.querySelectorAll('.tab')) {
    const active = view && tab.dataset.tab === view.tab;
    tab.classList.toggle('active', Boolean(active));
    if (active) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }

  const ctx = {
    segments,
    params,
    signal: controller.signal,
    setState(state) {
      if (controller.signal.aborted) return;
      root.dataset.state = state;
      // When the browser has painted the view (the frame after the next
      // animation frame): what the browser tests time.
      requestAnimationFrame(() =>
        setTimeout(() => {
          if (!controller.signal.aborted) root.dataset.paintedMs = String(Math.round(performance.now()));
        }, 0),
      );
    },
    setTitle(title) {
      if (!controller.signal.aborted) document.title = title ? `${title} · weft` : 'weft';
    },
  };

  if (!view) {
    ctx.setTitle('Not found');
    const home = h('a', { class: 'button', href: '#/graph', text: 'Go to the service graph' });
    root.appendChild(message('error', 'Page not found', `There is no view called “${name}”.`, home));
    ctx.setState('error');
    return;
  }

  Promise.resolve()
    .then(() => view.mount(root, ctx))
    .catch((err) => {
      if (isAbort(err) || controller.signal.aborted) return;
      root.replaceChildren(message('error', 'Something went wrong', err && err.message ? err.message : String(err)));
      ctx.setState('error');
    });
}

function setupTraceLookup() {
  const form = document.getElementById('trace-lookup');
  const input = document.getElementById('trace-lookup-input');
  if (!form || !input) return;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const id = input.value.trim().toLowerCase();
    if (!/^[0-9a-f]{1,32}$/.test(id)) {
      input.classList.add('invalid');
      input.setAttribute('aria-invalid', 'true');
      return;
    }
    input.classList.remove('invalid');
    input.removeAttribute('aria-invalid');
    input.value = '';
    navigate(`#/trace/${id}`);
  });
  input.addEventListener('input', () => {
    input.classList.remove('invalid');
    input.removeAttribute('aria-invalid');
  });
}

function start() {
  setRerender(render);
  setupTraceLookup();
  if (!window.location.hash || window.location.hash === '#' || window.location.hash === '#/') {
    window.history.replaceState(null, '', '#/graph');
  }
  window.addEventListener('hashchange', render);
  render();
}

start();
