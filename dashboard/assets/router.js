// Hash routing: the whole view state lives in the URL so links can be shared.
//
//   #/graph?window=300
//   #/traces?service=web&operation=GET%20%2F&limit=20&lookback=3600
//   #/trace/<traceId>

/** Parses a location hash into path segments and query parameters. */
export function parseHash(hash) {
  let rest = String(hash || '').replace(/^#/, '');
  if (!rest.startsWith('/')) rest = `/${rest}`;
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1));
  const segments = path
    .split('/')
    .filter((part) => part !== '')
    .map((part) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return part;
      }
    });
  return { segments, params };
}

/** Builds "#/path?k=v", leaving out empty parameters. */
export function buildHash(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `#${path}?${text}` : `#${path}`;
}

let rerender = () => {};

/** Lets the app re-render the current view (used when the hash does not change). */
export function setRerender(fn) {
  rerender = fn;
}

/** Goes to a hash; renders again when it is already the current one. */
export function navigate(hash) {
  if (window.location.hash === hash) {
    rerender();
  } else {
    window.location.hash = hash;
  }
}
