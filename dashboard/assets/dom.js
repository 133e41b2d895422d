// DOM building helpers.
//
// Every piece of data reaches the page through textContent or setAttribute,
// never through innerHTML: a span attribute holding "<script>" renders as
// text. The Content-Security-Policy forbids inline styles, so appearance comes
// from classes in weft.css and SVG geometry from attributes.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, props) {
  if (!props) return el;
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') {
      el.setAttribute('class', value);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) {
      append(el, child);
    } else if (child instanceof Node) {
      el.appendChild(child);
    } else {
      el.appendChild(document.createTextNode(String(child)));
    }
  }
  return el;
}

/** Appends children to an element, skipping null/false and flattening arrays. */
export function add(el, ...children) {
  return append(el, children);
}

/** An HTML element: h('td', {class: 'num', text: '42'}), children may be strings. */
export function h(tag, props, ...children) {
  return append(apply(document.createElement(tag), props), children);
}

/** An SVG element, same conventions as h(). */
export function s(tag, props, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), props), children);
}

/** Removes all children of an element. */
export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A small key/value table (attributes, resource); keys sorted. */
export function kvTable(object, emptyText) {
  const entries = object && typeof object === 'object' ? Object.entries(object) : [];
  if (entries.length === 0) return h('p', { class: 'muted small', text: emptyText });
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const body = h('tbody');
  for (const [key, value] of entries) {
    body.appendChild(
      h('tr', null, h('th', { text: key }), h('td', null, h('span', { class: 'kv-value', text: formatValue(value) }))),
    );
  }
  return h('table', { class: 'kv' }, body);
}

/** Renders a JSON attribute value as plain text. */
export function formatValue(value) {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/** A centred message for empty and error states. */
export function message(kind, title, detail, ...extra) {
  return h(
    'div',
    { class: `state-message ${kind}` },
    h('div', { class: 'state-icon', 'aria-hidden': 'true' }),
    h('h2', { text: title }),
    detail ? h('p', { text: detail }) : null,
    extra,
  );
}
