// Transit: the transit mounts, their keys (type, versions), rotation, and a panel that
// encrypts and decrypts with a key, to try it.

import { api } from '../api.js';
import { link } from '../router.js';
import {
  h, replace, field, errorNear, table, busy, badge, loading, pageHeader, card, facts, notice, formatTime,
} from '../dom.js';

const TYPES = ['aes256-gcm96', 'aes128-gcm96', 'chacha20-poly1305', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'ecdsa-p256', 'ecdsa-p384', 'ed25519'];

function errorBlock(e) {
  return notice('error', (e.messages || [e.message]).map((m) => h('p', {}, m)));
}

const b64 = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
const unb64 = (s) => new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));

export async function render(root, params, ctx) {
  if (params.mount && params.name) return keyPage(root, params.mount, params.name, ctx);
  if (params.mount) return keysPage(root, params.mount, ctx);
  replace(root, pageHeader('Transit'), loading('Loading mounts…'));
  let r;
  try {
    r = await api.get('/v1/sys/mounts');
  } catch (e) {
    if (ctx.alive()) replace(root, pageHeader('Transit'), errorBlock(e));
    return;
  }
  if (!ctx.alive()) return;
  const rows = Object.entries(r.data || r)
    .filter(([, m]) => m && m.type === 'transit')
    .map(([path, m]) => ({ path: path.replace(/\/$/, ''), description: m.description }));
  replace(root, pageHeader('Transit'), card('Transit mounts', table([
    { label: 'Mount', render: (m) => link(`/transit/${encodeURIComponent(m.path)}`, `${m.path}/`) },
    { label: 'Description', render: (m) => m.description || '—' },
  ], rows, { empty: 'No transit mount is enabled.' })));
}

async function keysPage(root, mount, ctx) {
  const head = () => [h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/transit', 'Transit')), pageHeader(`${mount}/`)];
  replace(root, head(), loading('Loading keys…'));
  let keys = [];
  try {
    keys = ((await api.list(`/v1/${encodeURIComponent(mount)}/keys`)).data || {}).keys || [];
  } catch (e) {
    if (e.status !== 404) {
      if (ctx.alive()) replace(root, head(), errorBlock(e));
      return;
    }
  }
  if (!ctx.alive()) return;
  const name = h('input', { type: 'text', name: 'transit-name', required: true, autocomplete: 'off' });
  const type = h('select', { name: 'transit-type' }, TYPES.map((t) => h('option', { value: t }, t)));
  const create = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create key');
  const form = h('form', { class: 'form', 'aria-label': 'Create a transit key' }, field('Name', name), field('Type', type), h('div', { class: 'actions' }, create));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNear(create, null);
    try {
      await busy(create, api.post(`/v1/${encodeURIComponent(mount)}/keys/${encodeURIComponent(name.value.trim())}`, { type: type.value }));
      ctx.navigate(`/transit/${encodeURIComponent(mount)}/${encodeURIComponent(name.value.trim())}`);
    } catch (err) {
      errorNear(create, err);
    }
  });
  replace(root, head(),
    card('Keys', table([{ label: 'Name', render: (k) => link(`/transit/${encodeURIComponent(mount)}/${encodeURIComponent(k)}`, k) }],
      keys, { empty: 'No transit keys yet.' })),
    card('Create a key', form));
}

async function keyPage(root, mount, name, ctx) {
  const path = `/v1/${encodeURIComponent(mount)}/keys/${encodeURIComponent(name)}`;
  const head = () => [h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/transit', 'Transit'), ' / ',
    link(`/transit/${encodeURIComponent(mount)}`, mount)), pageHeader(name)];
  replace(root, head(), loading('Loading the key…'));
  const body = h('div', {});
  const draw = (k) => {
    const versions = Object.entries(k.keys || {}).map(([v, t]) => ({ v: Number(v), t })).sort((a, b) => b.v - a.v);
    const rotate = h('button', { type: 'button', class: 'btn btn-primary', id: 'transit-rotate' }, 'Rotate');
    rotate.addEventListener('click', async () => {
      errorNear(rotate, null);
      try {
        await busy(rotate, api.post(`${path}/rotate`));
        draw((await api.get(path)).data);
      } catch (e) {
        errorNear(rotate, e);
      }
    });
    replace(body,
      card('Summary', facts([
        ['Type', k.type],
        ['Latest version', h('span', { id: 'transit-latest' }, String(k.latest_version))],
        ['Minimum decryption version', String(k.min_decryption_version)],
        ['Exportable', k.exportable ? 'Yes' : 'No'],
        ['Deletion allowed', k.deletion_allowed ? 'Yes' : 'No'],
      ]), h('div', { class: 'actions' }, rotate)),
      card('Versions', table([
        { label: 'Version', key: 'v' },
        { label: 'Created', render: (r) => formatTime(typeof r.t === 'object' && r.t ? r.t.creation_time : r.t) },
        { label: 'Usable for decryption', render: (r) => badge(r.v >= (k.min_decryption_version || 1) ? 'yes' : 'no', r.v >= (k.min_decryption_version || 1) ? 'ok' : 'muted') },
      ], versions)),
      k.supports_encryption ? cryptoPanel(mount, name) : null);
  };
  try {
    const k = (await api.get(path)).data;
    if (!ctx.alive()) return;
    draw(k);
  } catch (e) {
    if (ctx.alive()) replace(root, head(), errorBlock(e));
    return;
  }
  replace(root, head(), body);
}

function cryptoPanel(mount, name) {
  const plain = h('textarea', { name: 'plaintext', spellcheck: 'false' });
  const cipher = h('textarea', { name: 'ciphertext', spellcheck: 'false' });
  const enc = h('button', { type: 'button', class: 'btn btn-primary' }, 'Encrypt');
  const dec = h('button', { type: 'button', class: 'btn' }, 'Decrypt');
  const base = `/v1/${encodeURIComponent(mount)}`;
  enc.addEventListener('click', async () => {
    errorNear(enc, null);
    try {
      const r = await busy(enc, api.post(`${base}/encrypt/${encodeURIComponent(name)}`, { plaintext: b64(plain.value) }));
      cipher.value = r.data.ciphertext;
    } catch (e) {
      errorNear(enc, e);
    }
  });
  dec.addEventListener('click', async () => {
    errorNear(dec, null);
    try {
      const r = await busy(dec, api.post(`${base}/decrypt/${encodeURIComponent(name)}`, { ciphertext: cipher.value.trim() }));
      plain.value = unb64(r.data.plaintext);
    } catch (e) {
      errorNear(dec, e);
    }
  });
  return card('Try the key', h('p', { class: 'field-help' }, 'Text is encrypted as UTF-8; nothing typed here is stored.'),
    field('Plaintext', plain), h('div', { class: 'actions' }, enc),
    field('Ciphertext', cipher), h('div', { class: 'actions' }, dec));
}
