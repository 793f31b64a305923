// Keys: the managed keys of /api/v1/keys, filtered (name prefix, algorithm, state,
// label) and paged by the API's page tokens; a form to create one.

import { api } from '../api.js';
import { link } from '../router.js';
import {
  h, replace, field, errorNear, table, busy, badge, pager, loading, pageHeader, card, formatTime,
} from '../dom.js';

export const ALGORITHMS = ['RSA_2048', 'RSA_3072', 'RSA_4096', 'EC_P256', 'EC_P384', 'AES_256', 'ML_DSA_65', 'ML_KEM_768'];
const STATES = ['ENABLED', 'PENDING_DESTRUCTION'];
const PAGE_SIZE = 20;

/** `ENABLED` -> `enabled`, for the badge and the reader. */
export function stateWord(s) {
  return String(s || '').toLowerCase().replace(/_/g, ' ');
}

function select(options, { any } = {}) {
  return h('select', {}, any ? h('option', { value: '' }, any) : null, options.map((o) => h('option', { value: o }, o)));
}

export async function render(root, params, ctx) {
  const name = h('input', { type: 'search', name: 'name', autocomplete: 'off' });
  const algorithm = select(ALGORITHMS, { any: 'Any algorithm' });
  const state = select(STATES, { any: 'Any state' });
  const label = h('input', { type: 'text', name: 'label', placeholder: 'team=payments', autocomplete: 'off' });
  const apply = h('button', { type: 'submit', class: 'btn' }, 'Filter');
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter keys' },
    field('Name starts with', name), field('Algorithm', algorithm), field('State', state),
    field('Label', label, 'name=value'), h('div', { class: 'actions' }, apply));
  const results = h('div', { id: 'key-list' });
  // The page tokens that led to each page, so that "Previous" can go back.
  let tokens = [''];
  let page = 1;

  async function load() {
    replace(results, loading('Loading keys…'));
    errorNear(apply, null);
    try {
      const r = await api.get('/api/v1/keys', {
        pageSize: PAGE_SIZE,
        pageToken: tokens[page - 1],
        name: name.value.trim(),
        algorithm: algorithm.value,
        state: state.value,
        label: label.value.trim(),
      });
      if (!ctx.alive()) return;
      tokens[page] = r.nextPageToken || '';
      const filtered = name.value || algorithm.value || state.value || label.value;
      replace(results,
        table([
          { label: 'Name', render: (k) => link(`/keys/${encodeURIComponent(k.id)}`, k.name) },
          { label: 'Algorithm', key: 'algorithm' },
          { label: 'State', render: (k) => badge(stateWord(k.state)) },
          { label: 'Primary version', key: 'primaryVersion' },
          { label: 'Labels', render: (k) => Object.entries(k.labels || {}).map(([a, b]) => h('span', { class: 'tag' }, `${a}=${b}`)) },
          { label: 'Created', render: (k) => formatTime(k.createTime) },
        ], r.keys, { empty: filtered ? 'No key matches these filters.' : 'No keys yet: create the first one below.', caption: 'Keys' }),
        pager({ page, hasMore: Boolean(r.nextPageToken), onPage: (p) => { page = p; load(); } }));
    } catch (e) {
      if (!ctx.alive()) return;
      replace(results);
      errorNear(apply, e);
    }
  }

  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    tokens = [''];
    page = 1;
    load();
  });

  replace(root, pageHeader('Keys'), filters, results, createForm(ctx));
  await load();
}

function createForm(ctx) {
  const name = h('input', { type: 'text', name: 'key-name', required: true, autocomplete: 'off' });
  const algorithm = select(ALGORITHMS);
  const labels = h('input', { type: 'text', name: 'labels', placeholder: 'team=payments, env=prod', autocomplete: 'off' });
  const exportable = h('input', { type: 'checkbox', id: 'key-exportable' });
  const unwrapped = h('input', { type: 'checkbox', id: 'key-unwrapped' });
  const create = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create key');
  const form = h('form', { class: 'form', 'aria-label': 'Create a key' },
    field('Name', name),
    field('Algorithm', algorithm),
    field('Labels', labels, 'Comma-separated name=value pairs.'),
    h('div', { class: 'check' }, exportable, h('label', { for: exportable.id }, 'Exportable (to cloud KMS providers)')),
    h('div', { class: 'check' }, unwrapped, h('label', { for: unwrapped.id }, 'Allow unwrapped export (AES keys, for providers without key wrapping)')),
    h('div', { class: 'actions' }, create));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNear(create, null);
    const body = { name: name.value.trim(), algorithm: algorithm.value, exportable: exportable.checked };
    if (unwrapped.checked) body.allowUnwrappedExport = true;
    const pairs = labels.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (pairs.length) {
      body.labels = {};
      for (const p of pairs) {
        const at = p.indexOf('=');
        if (at < 1) {
          errorNear(labels, `"${p}" is not name=value`);
          return;
        }
        body.labels[p.slice(0, at).trim()] = p.slice(at + 1).trim();
      }
    }
    try {
      const key = await busy(create, api.post('/api/v1/keys', body));
      ctx.navigate(`/keys/${encodeURIComponent(key.id)}`);
    } catch (err) {
      errorNear(create, err);
    }
  });
  return card('Create a key', form);
}
