// The console's shell: the session, the header (seal state, who is signed in), the nav,
// and the route table. Pages live in pages/*.js and are loaded when first visited.

import { session, api } from './api.js';
import { route, start, navigate, currentPath, BASE } from './router.js';
import { h, replace, badge, loading, notice, pageHeader, emptyState } from './dom.js';

/** Every page of the console; the nav lists those with a label. */
const PAGES = [
  { path: '/status', label: 'Status', module: 'status' },
  { path: '/keys', label: 'Keys', module: 'keys' },
  { path: '/secrets', label: 'Secrets', module: 'secrets' },
  { path: '/transit', label: 'Transit', module: 'transit' },
  { path: '/policies', label: 'Policies', module: 'policies' },
  { path: '/tokens', label: 'Tokens', module: 'tokens' },
  { path: '/audit', label: 'Audit', module: 'audit' },
];

const load = (name) => () => import(`./pages/${name}.js`);

route('/signin', load('signin'), { access: 'public' });
route('/init', load('status'), { access: 'public' });
route('/unseal', load('status'), { access: 'public' });
route('/status', load('status'));
route('/keys', load('keys'));
route('/keys/:name', load('key_detail'));
route('/secrets', load('secrets'));
route('/secrets/:mount', load('secrets'));
route('/secrets/:mount/*path', load('secrets'));
route('/transit', load('transit'));
route('/transit/:mount', load('transit'));
route('/transit/:mount/:name', load('transit'));
route('/policies', load('policies'));
route('/policies/:name', load('policies'));
route('/tokens', load('tokens'));
route('/audit', load('audit'));

const state = {
  session: null,
  seal: null,
  /** Why the last session ended, shown on the sign-in page. */
  reason: '',
  /** Where to go after signing in. */
  next: '',
};

const root = document.getElementById('main');
let renderCount = 0;

async function refreshSeal() {
  try {
    state.seal = await api.get('/v1/sys/seal-status');
  } catch (e) {
    state.seal = { error: e };
  }
  drawHeader();
  return state.seal;
}

function drawHeader() {
  const s = state.seal;
  let word = '';
  if (s && !s.error) {
    if (!s.initialized) word = 'Not initialised';
    else word = s.sealed ? 'Sealed' : 'Unsealed';
  } else if (s && s.error) word = 'Unreachable';
  const kind = { Unsealed: 'ok', Sealed: 'danger', 'Not initialised': 'warn', Unreachable: 'danger' }[word];
  replace(document.getElementById('seal-state'), word ? [h('span', { class: 'sr-only' }, 'Appliance state: '), badge(word, kind)] : null);
  const who = document.getElementById('identity');
  if (state.session && state.session.signed_in) {
    const out = h('button', { type: 'button', class: 'btn btn-small btn-ghost', id: 'sign-out' }, 'Sign out');
    out.addEventListener('click', signOut);
    replace(who,
      h('span', { class: 'identity' }, h('span', { class: 'sr-only' }, 'Signed in as '), state.session.display_name || 'token'),
      out);
  } else {
    replace(who);
  }
  drawNav();
}

function drawNav() {
  const path = currentPath();
  const signedIn = Boolean(state.session && state.session.signed_in);
  const nav = document.getElementById('nav');
  nav.hidden = !signedIn;
  replace(nav, h('ul', {}, PAGES.map((p) => {
    const here = path === p.path || path.startsWith(`${p.path}/`);
    return h('li', {}, h('a', { href: BASE + p.path, 'data-link': true, 'aria-current': here ? 'page' : false }, p.label));
  })));
}

let expiryTimer = 0;

/** Looks at the session again when its token is due to expire, so that the page shows
 * sign-in with the reason instead of failing on the next click. */
function watchExpiry() {
  clearTimeout(expiryTimer);
  const s = state.session;
  if (!s || !s.signed_in || !s.expire_time) return;
  const due = new Date(s.expire_time).getTime() - Date.now() + 1000;
  // Timers past 2^31 ms fire at once: look again within the hour instead.
  expiryTimer = setTimeout(checkSession, Math.min(Math.max(due, 1000), 3600 * 1000));
}

async function checkSession() {
  try {
    const s = await session.load();
    if (!s.signed_in && state.session && state.session.signed_in) {
      ended(s.ended || 'session ended', s);
      return;
    }
    state.session = s;
  } catch {
    // Unreachable for now: try again later.
  }
  watchExpiry();
}

function ended(reason, anonymous) {
  state.session = anonymous;
  state.reason = reason;
  if (currentPath() !== '/signin') state.next = currentPath();
  drawHeader();
  watchExpiry();
  navigate('/signin', { replace: true });
}

async function signOut(e) {
  const btn = e.currentTarget;
  btn.disabled = true;
  try {
    await session.signOut();
  } catch {
    // The session is over either way: the server drops it, or it was already gone.
  }
  state.session = await session.load();
  state.reason = 'You signed out.';
  drawHeader();
  watchExpiry();
  navigate('/signin', { replace: true });
}

session.onEnded(async (reason) => {
  const s = await session.load();
  ended(reason, s);
});

/** What every page gets besides its root and params. */
function context(query, mine) {
  return {
    session: state.session,
    seal: state.seal,
    query,
    reason: state.reason,
    /** False once the reader has moved on: a page drops late answers. */
    alive: () => mine === renderCount,
    navigate,
    refreshSeal,
    async signedIn(s) {
      state.session = s;
      state.reason = '';
      drawHeader();
      watchExpiry();
      const next = state.next && state.next !== '/signin' ? state.next : '/status';
      state.next = '';
      navigate(next, { replace: true });
    },
    async reloadSession() {
      state.session = await session.load();
      drawHeader();
      return state.session;
    },
  };
}

function notBuilt(path) {
  const page = PAGES.find((p) => path === p.path || path.startsWith(`${p.path}/`));
  return [pageHeader(page ? page.label : 'Page'), emptyState('This page is not built yet.')];
}

async function onRoute(m, path, query) {
  renderCount += 1;
  const mine = renderCount;
  if (path === '/' || !m) {
    if (path !== '/') {
      replace(root, pageHeader('Not found'), emptyState('There is no page at this address.'));
      return;
    }
    navigate('/status', { replace: true });
    return;
  }
  replace(root, loading());
  const seal = await refreshSeal();
  if (mine !== renderCount) return;
  if (m.route.access !== 'public' && seal && !seal.error) {
    if (!seal.initialized) { navigate('/init', { replace: true }); return; }
    if (seal.sealed) { navigate('/unseal', { replace: true }); return; }
    if (!state.session.signed_in) {
      state.next = path;
      navigate('/signin', { replace: true });
      return;
    }
  }
  let page;
  try {
    page = await m.route.loader();
  } catch (e) {
    if (mine === renderCount) replace(root, notBuilt(path));
    console.warn('page module not loaded', e);
    return;
  }
  if (mine !== renderCount) return;
  replace(root);
  try {
    await page.render(root, { ...m.params, view: path.split('/')[1] }, context(query, mine));
  } catch (e) {
    if (mine === renderCount) replace(root, notice('error', h('p', {}, e.message || String(e))));
  }
  if (mine === renderCount) {
    const heading = root.querySelector('h1');
    document.title = heading ? `${heading.textContent} · Ironseal` : 'Ironseal console';
    root.focus({ preventScroll: true });
  }
}

async function boot() {
  replace(root, loading());
  try {
    state.session = await session.load();
  } catch (e) {
    replace(root, notice('error', h('p', {}, `The console cannot start: ${e.message}`)));
    return;
  }
  if (state.session.ended) state.reason = state.session.ended;
  drawHeader();
  watchExpiry();
  start(onRoute);
}

boot();
