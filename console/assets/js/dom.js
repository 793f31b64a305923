// The only way pages make DOM. Text always goes in as text nodes, never parsed as HTML,
// so nothing the API returns can become markup.

let nextId = 0;

/** A fresh id for label/description wiring. */
export function uid(prefix = 'c') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

/**
 * `h('button', {class: 'btn', onclick: f, disabled: true}, 'Save')`. Attributes whose
 * value is false, null or undefined are left out; `on*` functions become listeners.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' && 'checked' in el) {
      el.checked = Boolean(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

/** Empties `el` and puts `children` in it. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form control, with optional help text wired to it for screen readers. */
export function field(label, input, help) {
  if (!input.id) input.id = uid('f');
  const parts = [h('label', { for: input.id, class: 'field-label' }, label), input];
  if (help) {
    const helpId = uid('help');
    const described = input.getAttribute('aria-describedby');
    input.setAttribute('aria-describedby', described ? `${described} ${helpId}` : helpId);
    parts.push(h('p', { class: 'field-help', id: helpId }, help));
  }
  return h('div', { class: 'field' }, parts);
}

function messagesOf(err) {
  if (!err) return [];
  if (Array.isArray(err.messages) && err.messages.length) return err.messages;
  if (typeof err === 'string') return [err];
  return [err.message || String(err)];
}

/**
 * Shows `err` (an ApiError, Error or string) in the API's words right after `control`
 * (its field when it has one); `errorNear(control, null)` clears it.
 */
export function errorNear(control, err) {
  const anchor = control.closest('.field') || control;
  const next = anchor.nextElementSibling;
  if (next && next.classList.contains('error-near')) next.remove();
  control.removeAttribute('aria-invalid');
  const msgs = messagesOf(err);
  if (!msgs.length) return null;
  const id = uid('err');
  const box = h(
    'div',
    { class: 'error-near', id, role: 'alert' },
    msgs.map((m) => h('p', {}, m)),
  );
  anchor.after(box);
  if (control.matches('input, select, textarea')) {
    control.setAttribute('aria-invalid', 'true');
    const described = (control.getAttribute('aria-describedby') || '')
      .split(' ')
      .filter((x) => x && !x.startsWith('err-'));
    control.setAttribute('aria-describedby', [...described, id].join(' '));
  }
  return box;
}

/**
 * A table. `columns`: [{label, key} or {label, render(row) -> node|text, class}];
 * `rows`: objects. With no rows, the `empty` text in an empty state instead.
 */
export function table(columns, rows, { empty = 'Nothing here yet.', caption } = {}) {
  if (!rows || rows.length === 0) return emptyState(empty);
  const head = h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)));
  const body = rows.map((row) =>
    h(
      'tr',
      {},
      columns.map((c) =>
        h('td', { class: c.class, 'data-label': c.label }, c.render ? c.render(row) : row[c.key]),
      ),
    ),
  );
  return h(
    'div',
    { class: 'table-wrap' },
    h('table', { class: 'table' }, caption ? h('caption', {}, caption) : null,
      h('thead', {}, head), h('tbody', {}, body)),
  );
}

/** Asks `text` in a modal <dialog>; resolves true if confirmed. */
export function confirmDialog(text, { confirm = 'Confirm', cancel = 'Cancel', danger = true } = {}) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const ok = h('button', { type: 'submit', value: 'ok', class: danger ? 'btn btn-danger' : 'btn btn-primary' }, confirm);
    const no = h('button', { type: 'submit', value: 'cancel', class: 'btn' }, cancel);
    const dialog = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': titleId },
      h('form', { method: 'dialog' }, h('p', { id: titleId, class: 'dialog-text' }, text),
        h('div', { class: 'actions' }, no, ok)),
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    no.focus();
  });
}

/** Disables `button` and marks it busy until `promise` settles; returns the promise. */
export async function busy(button, promise) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.classList.add('is-busy');
  try {
    return await promise;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.classList.remove('is-busy');
  }
}

/** A button copying `text` to the clipboard. */
export function copyButton(text, label = 'Copy') {
  const btn = h('button', { type: 'button', class: 'btn btn-small' }, label);
  btn.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
    } catch {
      btn.textContent = 'Copy failed: select the text';
    }
    setTimeout(() => { btn.textContent = label; }, 2000);
  });
  return btn;
}

const BADGE_KINDS = {
  ok: ['unsealed', 'enabled', 'active', 'healthy', 'ok', 'synced', 'valid', 'initialised', 'on', 'success'],
  warn: ['pending', 'scheduled', 'syncing', 'deleted', 'warning', 'degraded', 'expiring'],
  danger: ['sealed', 'destroyed', 'error', 'failed', 'revoked', 'expired', 'unhealthy', 'invalid', 'denied'],
};

/** A short state word as a coloured badge; the colour is never the only signal. */
export function badge(state, kind) {
  const word = String(state);
  const k = kind || Object.keys(BADGE_KINDS).find((c) => BADGE_KINDS[c].includes(word.toLowerCase())) || 'muted';
  return h('span', { class: `badge badge-${k}` }, word);
}

/**
 * Previous/next paging: `pager({page, hasMore, onPage})`, pages counted from 1; `total`
 * (optional) shows "page N of M".
 */
export function pager({ page, hasMore, total, onPage }) {
  const prev = h('button', { type: 'button', class: 'btn btn-small', disabled: page <= 1, onclick: () => onPage(page - 1) }, 'Previous');
  const next = h('button', { type: 'button', class: 'btn btn-small', disabled: !hasMore, onclick: () => onPage(page + 1) }, 'Next');
  const where = total ? `Page ${page} of ${total}` : `Page ${page}`;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, h('span', { class: 'pager-where' }, where), next);
}

/** What a list shows when it has nothing. */
export function emptyState(text, ...actions) {
  return h('div', { class: 'empty' }, h('p', {}, text), actions.length ? h('div', { class: 'actions' }, actions) : null);
}

/** A loading placeholder, announced to screen readers. */
export function loading(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

/** A titled card. */
export function card(title, ...children) {
  const titleId = uid('card');
  return h('section', { class: 'card', 'aria-labelledby': titleId }, h('h2', { class: 'card-title', id: titleId }, title), children);
}

/** The page's title line, with actions on the right. */
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h1', {}, title), actions.length ? h('div', { class: 'actions' }, actions) : null);
}

/** A message block: kind is 'info', 'ok', 'warn' or 'error'. */
export function notice(kind, ...children) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, children);
}

/** A definition list of [term, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** A timestamp (RFC 3339 or seconds) as the reader's local date and time. */
export function formatTime(t) {
  if (t === null || t === undefined || t === '') return '—';
  const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1971) return '—';
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
