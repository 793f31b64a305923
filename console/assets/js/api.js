// The console's only way to the appliance: every call goes through the daemon's
// /ui/api proxy, which adds the session's token; the page never holds the token. Each
// request carries the session's CSRF token.

const PREFIX = '/ui/api';

let csrf = '';
const endedListeners = [];

/** An API refusal, with the API's own words. */
export class ApiError extends Error {
  constructor(status, messages) {
    super(messages.length ? messages.join('; ') : `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.messages = messages;
  }
}

/** The words of an error body: Vault's `errors`, or a problem object's title/detail. */
function messagesOf(body, status) {
  if (body && Array.isArray(body.errors) && body.errors.length) {
    return body.errors.map(String);
  }
  if (body && (body.title || body.detail)) {
    return [body.title, body.detail].filter(Boolean).map(String);
  }
  return [`the server answered ${status}`];
}

async function parse(resp) {
  if (resp.status === 204) return null;
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { errors: [text.trim()] };
  }
}

async function send(method, url, body, extraHeaders = {}) {
  const headers = { 'X-CSRF-Token': csrf, ...extraHeaders };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] ??= 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch {
    throw new ApiError(0, ['the appliance could not be reached']);
  }
  const data = await parse(resp);
  if (!resp.ok) {
    const err = new ApiError(resp.status, messagesOf(data, resp.status));
    err.body = data;
    if (resp.status === 401 && err.messages.some((m) => m.startsWith('session ended'))) {
      for (const f of endedListeners) f(err.messages[0]);
    }
    throw err;
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function proxied(path) {
  if (!path.startsWith('/v1/') && !path.startsWith('/api/v1/')) {
    throw new Error(`not an API path: ${path}`);
  }
  return PREFIX + path;
}

export const api = {
  get: (path, params) => send('GET', proxied(path) + query(params)),
  list: (path, params) => send('GET', proxied(path) + query({ ...params, list: 'true' })),
  post: (path, body = {}) => send('POST', proxied(path), body),
  put: (path, body = {}) => send('PUT', proxied(path), body),
  // Vault takes a PATCH only as a JSON merge patch.
  patch: (path, body = {}) =>
    send('PATCH', proxied(path), body, { 'Content-Type': 'application/merge-patch+json' }),
  del: (path) => send('DELETE', proxied(path)),
};

/** The console session: anonymous until signed in. */
export const session = {
  async load() {
    const s = await send('GET', '/ui/session');
    csrf = s.csrf;
    return s;
  },
  async signIn(token) {
    const s = await send('POST', '/ui/session', { token });
    csrf = s.csrf;
    return s;
  },
  async signOut() {
    await send('DELETE', '/ui/session');
    csrf = '';
  },
  /** Calls `f(reason)` when the server ends the session (token revoked or expired). */
  onEnded(f) {
    endedListeners.push(f);
  },
};
