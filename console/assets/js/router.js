// History routing under /ui (no hash): `route('/keys/:name', () => import('./pages/key_detail.js'))`.
// A pattern's `:name` matches one path segment, `*name` the rest of the path.

export const BASE = '/ui';

const routes = [];
let handler = null;

/**
 * Registers `pattern` (below /ui) served by `loader`, a dynamic import of a page module
 * exporting `render(root, params, ctx)`. `opts.access`: 'public' (no sign-in needed) or
 * 'signed-in' (the default).
 */
export function route(pattern, loader, opts = {}) {
  routes.push({ parts: pattern.split('/').filter(Boolean), loader, pattern, access: opts.access || 'signed-in' });
}

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const r of routes) {
    const params = {};
    let ok = true;
    let i = 0;
    for (; i < r.parts.length; i += 1) {
      const p = r.parts[i];
      if (p.startsWith('*')) {
        params[p.slice(1)] = parts.slice(i).map(decodeURIComponent).join('/');
        i = parts.length;
        break;
      }
      if (i >= parts.length) { ok = false; break; }
      if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(parts[i]);
      else if (p !== parts[i]) { ok = false; break; }
    }
    if (ok && i === parts.length) return { route: r, params };
  }
  return null;
}

/** The path below /ui of the current location. */
export function currentPath() {
  const p = window.location.pathname;
  return p.startsWith(BASE) ? p.slice(BASE.length) || '/' : '/';
}

function dispatch() {
  if (!handler) return;
  const path = currentPath();
  const query = new URLSearchParams(window.location.search);
  handler(match(path), path, query);
}

/** Goes to `path` (a full /ui/... path, or one below /ui). */
export function navigate(path, { replace = false } = {}) {
  const full = path.startsWith(BASE) ? path : BASE + (path.startsWith('/') ? path : `/${path}`);
  if (replace) window.history.replaceState(null, '', full);
  else window.history.pushState(null, '', full);
  dispatch();
}

/** A link that the router follows without a page load. */
export function link(path, ...children) {
  const a = document.createElement('a');
  a.href = path.startsWith(BASE) ? path : BASE + path;
  a.setAttribute('data-link', '');
  for (const c of children) a.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return a;
}

/** Starts routing: `onRoute(match | null, path, query)` runs on every navigation. */
export function start(onRoute) {
  handler = onRoute;
  window.addEventListener('popstate', dispatch);
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest('a[href]');
    if (!a || a.target || a.origin !== window.location.origin) return;
    if (!a.pathname.startsWith(`${BASE}/`) || a.pathname.startsWith(`${BASE}/assets/`)) return;
    e.preventDefault();
    navigate(a.pathname + a.search);
  });
  dispatch();
}
