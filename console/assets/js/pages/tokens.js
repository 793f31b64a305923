// Tokens: create one with policies and a TTL (shown once), the accessors of the
// existing tokens (looked up one by one), and revocation by accessor.

import { api } from '../api.js';
import {
  h, replace, field, errorNear, table, busy, badge, loading, pageHeader, card, notice, copyButton,
  confirmDialog, formatTime, emptyState,
} from '../dom.js';

export async function render(root, params, ctx) {
  const list = h('div', { id: 'accessors' });
  replace(root, pageHeader('Tokens'), createCard(() => load()), card('Tokens by accessor', list));

  async function load() {
    replace(list, loading('Loading accessors…'));
    let accessors;
    try {
      accessors = ((await api.list('/v1/auth/token/accessors')).data || {}).keys || [];
    } catch (e) {
      if (ctx.alive()) replace(list, notice('error', (e.messages || [e.message]).map((m) => h('p', {}, m))));
      return;
    }
    const rows = [];
    for (const a of accessors.slice(0, 200)) {
      try {
        rows.push({ accessor: a, ...(await api.post('/v1/auth/token/lookup-accessor', { accessor: a })).data });
      } catch {
        rows.push({ accessor: a, gone: true });
      }
    }
    if (!ctx.alive()) return;
    replace(list, rows.length ? table([
      { label: 'Accessor', render: (r) => h('span', { class: 'mono' }, r.accessor) },
      { label: 'Name', render: (r) => r.display_name || '—' },
      { label: 'Policies', render: (r) => (r.policies || []).join(', ') || '—' },
      { label: 'Expires', render: (r) => (r.gone ? badge('revoked') : (r.expire_time ? formatTime(r.expire_time) : 'Never')) },
      {
        label: 'Action',
        render: (r) => {
          if (r.gone) return '—';
          const b = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Revoke ${r.display_name || r.accessor}` }, 'Revoke');
          b.addEventListener('click', async () => {
            errorNear(b, null);
            if (!(await confirmDialog(`Revoke the token ${r.display_name || r.accessor} and its children?`, { confirm: 'Revoke' }))) return;
            try {
              await busy(b, api.post('/v1/auth/token/revoke-accessor', { accessor: r.accessor }));
              await load();
            } catch (e) {
              errorNear(b, e);
            }
          });
          return b;
        },
      },
    ], rows, { caption: 'Tokens' }) : emptyState('No tokens.'));
  }
  await load();
}

function createCard(reload) {
  const policies = h('input', { type: 'text', name: 'token-policies', placeholder: 'default, readers', autocomplete: 'off' });
  const ttl = h('input', { type: 'text', name: 'token-ttl', placeholder: '1h', autocomplete: 'off' });
  const name = h('input', { type: 'text', name: 'token-name', autocomplete: 'off' });
  const create = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create token');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'form', 'aria-label': 'Create a token' },
    field('Display name', name), field('Policies', policies, 'Comma-separated.'),
    field('TTL', ttl, 'For example 30m, 1h or 720h; empty for the default.'),
    h('div', { class: 'actions' }, create), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNear(create, null);
    replace(out);
    const body = { policies: policies.value.split(',').map((s) => s.trim()).filter(Boolean) };
    if (ttl.value.trim()) body.ttl = ttl.value.trim();
    if (name.value.trim()) body.display_name = name.value.trim();
    try {
      const r = await busy(create, api.post('/v1/auth/token/create', body));
      const a = r.auth;
      replace(out, notice('warn',
        h('p', {}, h('strong', {}, 'The new token, shown once: '), h('span', { class: 'mono', id: 'new-token' }, a.client_token), ' ', copyButton(a.client_token)),
        h('p', {}, `Accessor ${a.accessor}; policies ${(a.policies || []).join(', ')}; TTL ${a.lease_duration ? `${a.lease_duration} s` : 'none'}.`)));
      reload();
    } catch (err) {
      errorNear(create, err);
    }
  });
  return card('Create a token', form);
}
