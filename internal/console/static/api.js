// api.js: the console's one way to Owl's API, the same operations the
// CLI uses, authenticated by the session cookie; every request carries
// the session's CSRF token in X-Owl-Csrf (the cookie alone authorizes
// nothing). The token is kept in this tab's sessionStorage only.

const csrfKey = 'owl.csrf';

// APIError is an error answer: Lambda's error type, its message, the
// HTTP status.
export class APIError extends Error {
  constructor(status, type, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.type = type;
  }
}

// SignedOutError is an answer saying the session is gone (expired,
// signed out, or the server restarted).
export class SignedOutError extends APIError {}

// csrf is the session's CSRF token, '' when this tab has none.
export function csrf() {
  return sessionStorage.getItem(csrfKey) || '';
}

export function setCSRF(token) {
  if (token) sessionStorage.setItem(csrfKey, token);
  else sessionStorage.removeItem(csrfKey);
}

// call sends one request and returns the Response, or throws an APIError.
// A body that is not a string is sent as JSON.
export async function call(method, path, { body, headers = {}, signal } = {}) {
  const h = { ...headers, 'X-Owl-Csrf': csrf() };
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  const resp = await fetch(path, { method, headers: h, body, credentials: 'same-origin', signal, cache: 'no-store' });
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

// json is call, answering the decoded JSON body.
export async function json(method, path, opts) {
  const resp = await call(method, path, opts);
  if (resp.status === 204) return null;
  return resp.json();
}

async function errorOf(resp) {
  const type = (resp.headers.get('X-Amzn-ErrorType') || '').split(':')[0] || `HTTP ${resp.status}`;
  let message = '';
  try {
    const j = await resp.json();
    message = j.message || j.Message || '';
  } catch {
    message = resp.statusText;
  }
  if (resp.status === 403 && (type === 'UnrecognizedClientException' || type === 'MissingAuthenticationTokenException')) {
    const e = new SignedOutError(resp.status, type, message);
    window.dispatchEvent(new CustomEvent('owl:signedout', { detail: e }));
    return e;
  }
  return new APIError(resp.status, type, message);
}

// fn is the API path of a function's operation.
export function fnPath(name, rest = '') {
  return `/2015-03-31/functions/${encodeURIComponent(name)}${rest}`;
}
