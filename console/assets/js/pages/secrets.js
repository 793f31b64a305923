// Secrets: the kv version 2 mounts, their folders (`?dir=a/b/`), and one secret with
// its versions (created, deleted, destroyed), its metadata, a new version, and
// delete/undelete/destroy of a version.

import { api } from '../api.js';
import { link } from '../router.js';
import {
  h, replace, field, errorNear, table, busy, badge, loading, pageHeader, card, facts, notice,
  confirmDialog, formatTime, emptyState,
} from '../dom.js';

const enc = (p) => p.split('/').map(encodeURIComponent).join('/');

function errorBlock(e) {
  return notice('error', (e.messages || [e.message]).map((m) => h('p', {}, m)));
}

export async function render(root, params, ctx) {
  if (!params.mount) return mounts(root, ctx);
  const mount = params.mount;
  if (params.path) return secret(root, mount, params.path, ctx);
  return folder(root, mount, ctx.query.get('dir') || '', ctx);
}

async function mounts(root, ctx) {
  replace(root, pageHeader('Secrets'), loading('Loading mounts…'));
  let r;
  try {
    r = await api.get('/v1/sys/mounts');
  } catch (e) {
    if (ctx.alive()) replace(root, pageHeader('Secrets'), errorBlock(e));
    return;
  }
  if (!ctx.alive()) return;
  const data = r.data || r;
  const rows = Object.entries(data)
    .filter(([, m]) => m && m.type === 'kv' && String((m.options || {}).version) === '2')
    .map(([path, m]) => ({ path: path.replace(/\/$/, ''), description: m.description }));
  replace(root, pageHeader('Secrets'),
    card('Key/value mounts (version 2)', table([
      { label: 'Mount', render: (m) => link(`/secrets/${encodeURIComponent(m.path)}`, `${m.path}/`) },
      { label: 'Description', render: (m) => m.description || '—' },
    ], rows, { empty: 'No kv version 2 mount is enabled.' })));
}

function crumbs(mount, dir) {
  const parts = dir.split('/').filter(Boolean);
  const items = [link('/secrets', 'Secrets'), ' / ', link(`/secrets/${encodeURIComponent(mount)}`, mount)];
  let acc = '';
  for (const p of parts) {
    acc += `${p}/`;
    items.push(' / ', link(`/secrets/${encodeURIComponent(mount)}?dir=${encodeURIComponent(acc)}`, p));
  }
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, items);
}

async function folder(root, mount, dir, ctx) {
  const title = dir ? `${mount}/${dir}` : `${mount}/`;
  replace(root, crumbs(mount, dir), pageHeader(title), loading('Loading secrets…'));
  let keys = [];
  try {
    const r = await api.list(`/v1/${enc(mount)}/metadata/${enc(dir)}`);
    keys = (r.data && r.data.keys) || [];
  } catch (e) {
    if (e.status !== 404) {
      if (ctx.alive()) replace(root, crumbs(mount, dir), pageHeader(title), errorBlock(e));
      return;
    }
  }
  if (!ctx.alive()) return;
  const rows = keys.map((k) => ({ k, folder: k.endsWith('/') }));
  replace(root, crumbs(mount, dir), pageHeader(title),
    card('Entries', rows.length ? table([
      {
        label: 'Name',
        render: (r) => (r.folder
          ? link(`/secrets/${encodeURIComponent(mount)}?dir=${encodeURIComponent(dir + r.k)}`, r.k)
          : link(`/secrets/${encodeURIComponent(mount)}/${enc(dir + r.k)}`, r.k)),
      },
      { label: 'Kind', render: (r) => (r.folder ? 'Folder' : 'Secret') },
    ], rows) : emptyState('Nothing stored here yet.')),
    writeCard(mount, dir, null, ctx));
}

/** A form writing a secret (a new one below `dir`, or a new version of `path`). */
function writeCard(mount, dir, path, ctx, current) {
  const name = path ? null : h('input', { type: 'text', name: 'secret-path', required: true, autocomplete: 'off' });
  const data = h('textarea', { name: 'secret-data', required: true, spellcheck: 'false' },
    current ? JSON.stringify(current, null, 2) : '{\n  "key": "value"\n}');
  const save = h('button', { type: 'submit', class: 'btn btn-primary' }, path ? 'Save new version' : 'Create secret');
  const form = h('form', { class: 'form', 'aria-label': path ? 'New version' : 'Create a secret' },
    name ? field('Path', name, dir ? `Below ${mount}/${dir}` : `Below ${mount}/`) : null,
    field('Data (JSON object)', data),
    h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNear(save, null);
    errorNear(data, null);
    let parsed;
    try {
      parsed = JSON.parse(data.value);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('the data must be a JSON object');
    } catch (err) {
      errorNear(data, err.message);
      return;
    }
    const target = path || dir + name.value.trim().replace(/^\/+/, '');
    try {
      await busy(save, api.post(`/v1/${enc(mount)}/data/${enc(target)}`, { data: parsed }));
      ctx.navigate(`/secrets/${encodeURIComponent(mount)}/${enc(target)}`, { replace: Boolean(path) });
    } catch (err) {
      errorNear(save, err);
    }
  });
  return card(path ? 'New version' : 'Create a secret', form);
}

function versionState(v) {
  if (v.destroyed) return 'destroyed';
  if (v.deletion_time) return 'deleted';
  return 'active';
}

async function secret(root, mount, path, ctx) {
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
  const head = () => [crumbs(mount, dir), pageHeader(path.split('/').pop())];
  replace(root, head(), loading('Loading the secret…'));
  const want = ctx.query.get('version');
  let meta;
  let data = null;
  let dataError = null;
  try {
    meta = (await api.get(`/v1/${enc(mount)}/metadata/${enc(path)}`)).data;
  } catch (e) {
    if (ctx.alive()) replace(root, head(), errorBlock(e));
    return;
  }
  const shown = Number(want || meta.current_version);
  try {
    data = (await api.get(`/v1/${enc(mount)}/data/${enc(path)}`, { version: shown })).data;
  } catch (e) {
    // A deleted or destroyed version reads as 404: the metadata says which.
    dataError = e;
  }
  if (!ctx.alive()) return;
  const versions = Object.entries(meta.versions || {})
    .map(([n, v]) => ({ n: Number(n), ...v }))
    .sort((a, b) => b.n - a.n);
  const reload = () => ctx.navigate(`/secrets/${encodeURIComponent(mount)}/${enc(path)}?version=${shown}`, { replace: true });

  const act = (label, cls, run, question) => {
    const b = h('button', { type: 'button', class: `btn btn-small ${cls}` }, label);
    b.addEventListener('click', async () => {
      errorNear(b, null);
      if (question && !(await confirmDialog(question, { confirm: label }))) return;
      try {
        await busy(b, run());
        reload();
      } catch (e) {
        errorNear(b, e);
      }
    });
    return b;
  };

  const versionRows = table([
    { label: 'Version', render: (v) => link(`/secrets/${encodeURIComponent(mount)}/${enc(path)}?version=${v.n}`, `Version ${v.n}`) },
    { label: 'State', render: (v) => badge(versionState(v)) },
    { label: 'Created', render: (v) => formatTime(v.created_time) },
    { label: 'Deleted', render: (v) => formatTime(v.deletion_time) },
    {
      label: 'Actions',
      render: (v) => {
        const s = versionState(v);
        if (s === 'destroyed') return 'None: destroyed for good';
        const items = [];
        if (s === 'active') {
          items.push(act('Delete', '', () => api.post(`/v1/${enc(mount)}/delete/${enc(path)}`, { versions: [v.n] })));
        } else {
          items.push(act('Undelete', '', () => api.post(`/v1/${enc(mount)}/undelete/${enc(path)}`, { versions: [v.n] })));
        }
        items.push(act('Destroy', 'btn-danger', () => api.put(`/v1/${enc(mount)}/destroy/${enc(path)}`, { versions: [v.n] }),
          `Destroy version ${v.n} of ${path}? Its data is erased and cannot be recovered.`));
        const wrap = h('div', { class: 'actions', 'aria-label': `Version ${v.n}`, role: 'group' }, items);
        return wrap;
      },
    },
  ], versions, { caption: 'Versions' });

  let dataBody;
  if (data && data.data) {
    dataBody = table([
      { label: 'Key', render: (r) => h('span', { class: 'mono' }, r.k) },
      { label: 'Value', render: (r) => h('span', { class: 'mono' }, typeof r.v === 'string' ? r.v : JSON.stringify(r.v)) },
    ], Object.entries(data.data).map(([k, v]) => ({ k, v })), { caption: `Data of version ${shown}` });
  } else if (versionState(meta.versions?.[shown] || {}) === 'destroyed') {
    dataBody = notice('warn', h('p', {}, `Version ${shown} is destroyed: its data is gone.`));
  } else if (versionState(meta.versions?.[shown] || {}) === 'deleted') {
    dataBody = notice('warn', h('p', {}, `Version ${shown} is deleted. Undelete it to read it again.`));
  } else {
    dataBody = dataError ? errorBlock(dataError) : emptyState('No data.');
  }

  replace(root, head(),
    card(`Version ${shown}`, h('div', { id: 'secret-data' }, dataBody)),
    card('Versions', versionRows),
    card('Metadata', facts([
      ['Current version', String(meta.current_version)],
      ['Oldest version', String(meta.oldest_version)],
      ['Max versions', meta.max_versions ? String(meta.max_versions) : 'Mount default'],
      ['Created', formatTime(meta.created_time)],
      ['Updated', formatTime(meta.updated_time)],
      ['Delete versions after', meta.delete_version_after && meta.delete_version_after !== '0s' ? meta.delete_version_after : 'Never'],
      ['Custom metadata', meta.custom_metadata ? Object.entries(meta.custom_metadata).map(([k, v]) => `${k}=${v}`).join(', ') : '—'],
    ])),
    writeCard(mount, dir, path, ctx, data && data.data));
}
