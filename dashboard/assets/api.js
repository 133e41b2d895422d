// The collector's native JSON API, same origin only (the CSP allows nothing else).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/**
 * GET a JSON document. Empty parameters are left out. Throws ApiError with
 * the collector's `{"error": "..."}` message on a non-2xx answer, and lets an
 * AbortError through untouched (the view was left).
 */
export async function getJson(path, params, signal) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
  }
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: 'application/json' } });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'The collector could not be reached.');
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    body = null;
  }
  if (!response.ok) {
    const detail = body && typeof body.error === 'string' && body.error !== '' ? body.error : response.statusText;
    throw new ApiError(response.status, detail || `HTTP ${response.status}`);
  }
  if (body === null || typeof body !== 'object') {
    throw new ApiError(response.status, 'The collector sent a response that is not JSON.');
  }
  return body;
}

export function isAbort(err) {
  return Boolean(err) && err.name === 'AbortError';
}

/** Coerces a possibly missing array field. */
export function list(value) {
  return Array.isArray(value) ? value : [];
}

/** Coerces a possibly missing number field. */
export function num(value) {
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

/** Coerces a possibly missing string field. */
export function str(value) {
  return typeof value === 'string' ? value : value === null || value === undefined ? '' : String(value);
}
