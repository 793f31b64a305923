// Policies: the ACL policies, one read and edited in HCL; a parse error is shown in the
// API's words beside the editor, with its line marked in a numbered view of the text.

import { api } from '../api.js';
import { link } from '../router.js';
import {
  h, replace, field, errorNear, table, busy, loading, pageHeader, card, notice,
} from '../dom.js';

const BASE = '/v1/sys/policies/acl';

function errorBlock(e) {
  return notice('error', (e.messages || [e.message]).map((m) => h('p', {}, m)));
}

export async function render(root, params, ctx) {
  if (params.name) return editor(root, params.name, ctx);
  replace(root, pageHeader('Policies'), loading('Loading policies…'));
  let names = [];
  try {
    names = ((await api.list(BASE)).data || {}).keys || [];
  } catch (e) {
    if (ctx.alive()) replace(root, pageHeader('Policies'), errorBlock(e));
    return;
  }
  if (!ctx.alive()) return;
  const name = h('input', { type: 'text', name: 'policy-name', required: true, autocomplete: 'off' });
  const go = h('button', { type: 'submit', class: 'btn btn-primary' }, 'New policy');
  const form = h('form', { class: 'form', 'aria-label': 'New policy' }, field('Name', name), h('div', { class: 'actions' }, go));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    ctx.navigate(`/policies/${encodeURIComponent(name.value.trim())}?new=1`);
  });
  replace(root, pageHeader('Policies'),
    card('ACL policies', table([
      { label: 'Name', render: (n) => link(`/policies/${encodeURIComponent(n)}`, n) },
    ], names, { empty: 'No ACL policies.' })),
    card('Create a policy', form));
}

/** The line a parse error names ("line 3, column 5"), or 0. */
export function errorLine(messages) {
  for (const m of messages || []) {
    const found = /line (\d+)/i.exec(m);
    if (found) return Number(found[1]);
  }
  return 0;
}

async function editor(root, name, ctx) {
  const head = () => [h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/policies', 'Policies')), pageHeader(name)];
  replace(root, head(), loading('Loading the policy…'));
  let text = '';
  const fresh = ctx.query.get('new') === '1';
  if (!fresh) {
    try {
      text = ((await api.get(`${BASE}/${encodeURIComponent(name)}`)).data || {}).policy || '';
    } catch (e) {
      if (ctx.alive()) replace(root, head(), errorBlock(e));
      return;
    }
  }
  if (!ctx.alive()) return;
  const area = h('textarea', { name: 'policy', class: 'policy-text', spellcheck: 'false', rows: '16' }, text);
  area.value = text || 'path "secret/data/*" {\n  capabilities = ["read"]\n}\n';
  const where = h('div', { id: 'policy-where' });
  const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save policy');
  const form = h('form', { 'aria-label': `Edit policy ${name}` },
    field('Policy (HCL)', area, 'Paths and their capabilities, as in Vault.'), where,
    h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNear(area, null);
    replace(where);
    try {
      await busy(save, api.put(`${BASE}/${encodeURIComponent(name)}`, { policy: area.value }));
      replace(where, notice('ok', h('p', {}, `Policy ${name} saved.`)));
    } catch (err) {
      errorNear(area, err);
      const line = errorLine(err.messages);
      if (line) replace(where, lines(area.value, line));
    }
  });
  const readOnly = name === 'root';
  if (readOnly) {
    area.readOnly = true;
    save.disabled = true;
  }
  replace(root, head(), card(readOnly ? 'The root policy (built in, not editable)' : 'Policy', form));
}

/** The text with numbered lines, `bad` marked. */
function lines(text, bad) {
  const all = text.split('\n');
  const from = Math.max(1, bad - 3);
  const to = Math.min(all.length, bad + 3);
  const items = [];
  for (let n = from; n <= to; n += 1) {
    items.push(h('li', { value: String(n), class: n === bad ? 'bad-line' : null, 'aria-current': n === bad ? 'true' : false },
      n === bad ? h('span', { class: 'sr-only' }, 'Error on this line: ') : null, all[n - 1] || ' '));
  }
  return h('div', { class: 'policy-lines' }, h('p', { class: 'policy-lines-title' }, `Line ${bad}:`), h('ol', { start: String(from) }, items));
}
