// The Cloud Exports card of a key page: one row per export (provider, destination,
// auto-sync toggle, last sync, the last sync error in the provider's words, "Sync now",
// delete), and a new-export form per provider asking for the fields the provider needs,
// with the permissions it must grant shown beside them.

import { api } from '../api.js';
import {
  h, replace, field, errorNear, table, busy, badge, loading, card, notice, confirmDialog, formatTime, uid,
} from '../dom.js';

/** What each provider asks for, and the permissions its identity needs. */
const PROVIDERS = {
  AzureKeyVault: {
    label: 'Azure Key Vault',
    metadata: [['vaultName', 'Key Vault name']],
    credentials: [['tenantId', 'Tenant ID'], ['clientId', 'Client ID'], ['clientSecret', 'Client secret', 'password']],
    destination: (m) => m.vaultName,
    permissions: [
      ['Key Vault Crypto Officer', 'Target Key Vault resource', 'Full key management: import, create, rotate, delete. Recommended for auto-sync.'],
      ['Key Vault Keys Reader + Key Vault Crypto User', 'Target Key Vault resource', 'Read + import only.'],
    ],
  },
  AwsKms: {
    label: 'AWS KMS',
    metadata: [['region', 'Region']],
    credentials: [['accessKeyId', 'Access key ID'], ['secretAccessKey', 'Secret access key', 'password']],
    destination: (m) => [m.region, m.alias].filter(Boolean).join(' · '),
    permissions: [
      ['kms:CreateKey, kms:ImportKeyMaterial, kms:DescribeKey, kms:GetParametersForImport', 'AWS account / KMS key ARN', 'The full import workflow. Add kms:CreateAlias when using aliases.'],
    ],
  },
  GcpKms: {
    label: 'GCP Cloud KMS',
    metadata: [['projectId', 'Project ID'], ['location', 'Location'], ['keyRing', 'Key ring']],
    credentials: [['serviceAccountJson', 'Service account JSON', 'textarea']],
    destination: (m) => [m.projectId, m.location, m.keyRing].filter(Boolean).join(' / '),
    permissions: [
      ['roles/cloudkms.admin', 'Target key ring or project', 'Full KMS management.'],
      ['roles/cloudkms.importer + roles/cloudkms.viewer', 'Target key ring', 'Import key versions only.'],
    ],
  },
  ScalewayKms: {
    label: 'Scaleway Key Manager',
    metadata: [['projectId', 'Project ID'], ['region', 'Region']],
    credentials: [['accessKey', 'Access key'], ['secretKey', 'Secret key', 'password']],
    destination: (m) => [m.projectId, m.region].filter(Boolean).join(' · '),
    permissions: [
      ['KeyManager (full access)', 'Target Scaleway project', 'Full key management. Recommended for auto-sync.'],
    ],
  },
};

const SYNC_WORDS = { OK: 'synced', FAILED: 'failed', PENDING: 'pending', RUNNING: 'syncing' };

function syncBadge(r) {
  return badge(SYNC_WORDS[r.syncState] || String(r.syncState || '').toLowerCase());
}

/** The card for `key`; it loads its exports itself. */
export function exportsCard(key, ctx) {
  const base = `/api/v1/keys/${encodeURIComponent(key.id)}/cloud-exports`;
  const list = h('div', { id: 'cloud-exports' });
  const status = h('div', { 'aria-live': 'polite', id: 'export-progress' });

  async function load() {
    try {
      const r = await api.get(base);
      if (!ctx.alive()) return [];
      const records = Array.isArray(r) ? r : (r.exports || r.cloudExports || []);
      replace(list, rows(records));
      return records;
    } catch (e) {
      replace(list, notice('error', (e.messages || [e.message]).map((m) => h('p', {}, m))));
      return [];
    }
  }

  /** Polls until the export has left PENDING/RUNNING (a sync the API answered 202). */
  async function settle(id) {
    const deadline = Date.now() + 60_000;
    while (ctx.alive() && Date.now() < deadline) {
      const records = await load();
      const r = records.find((x) => x.id === id);
      if (!r || (r.syncState !== 'PENDING' && r.syncState !== 'RUNNING')) return r;
      await new Promise((res) => { setTimeout(res, 1000); });
    }
    return null;
  }

  function progress(text) {
    replace(status, text ? h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text) : null);
  }

  function done(r, what) {
    if (!r) replace(status, notice('warn', h('p', {}, `${what}: still running; the table shows its state.`)));
    else if (r.lastSyncError) replace(status, notice('error', h('p', {}, `${what} failed: ${r.lastSyncError}`)));
    else replace(status, notice('ok', h('p', {}, `${what}: synced to ${PROVIDERS[r.provider]?.label || r.provider} at ${formatTime(r.lastSyncAt)}.`)));
  }

  function rows(records) {
    return table([
      { label: 'Provider', render: (r) => PROVIDERS[r.provider]?.label || r.provider },
      { label: 'Destination', render: (r) => (PROVIDERS[r.provider]?.destination(r.providerMetadata || {}) || '—') },
      {
        label: 'Auto-sync',
        render: (r) => {
          const id = uid('auto');
          const box = h('input', { type: 'checkbox', id, checked: r.autoSyncEnabled, class: 'auto-sync' });
          box.addEventListener('change', async () => {
            errorNear(box, null);
            try {
              await busy(box, api.patch(`${base}/${r.id}/auto-sync`, { enabled: box.checked }));
              await load();
            } catch (e) {
              box.checked = !box.checked;
              errorNear(box, e);
            }
          });
          return h('div', { class: 'check check-inline' }, box, h('label', { for: id }, r.autoSyncEnabled ? 'On' : 'Off'));
        },
      },
      { label: 'Sync', render: (r) => syncBadge(r) },
      { label: 'Last sync', render: (r) => h('span', { class: 'last-sync' }, formatTime(r.lastSyncAt)) },
      {
        label: 'Last sync error',
        render: (r) => (r.lastSyncError ? h('p', { class: 'sync-error' }, r.lastSyncError) : 'None'),
      },
      {
        label: 'Actions',
        render: (r) => {
          const sync = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Sync now to ${PROVIDERS[r.provider]?.label || r.provider}` }, 'Sync now');
          sync.addEventListener('click', async () => {
            errorNear(sync, null);
            progress('Syncing the current version…');
            let settled;
            try {
              await busy(sync, api.post(`${base}/${r.id}/sync`));
              settled = await settle(r.id);
            } catch (e) {
              progress('');
              settled = (await load()).find((x) => x.id === r.id);
              if (!settled?.lastSyncError) { errorNear(sync, e); return; }
            }
            done(settled, 'Sync');
          });
          const del = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Delete the export to ${PROVIDERS[r.provider]?.label || r.provider}` }, 'Delete');
          del.addEventListener('click', async () => {
            errorNear(del, null);
            const ok = await confirmDialog('Delete this export? The key stays at the provider; the saved credentials are deleted and no more syncs happen.', { confirm: 'Delete export' });
            if (!ok) return;
            try {
              await busy(del, api.del(`${base}/${r.id}`));
              replace(status, notice('ok', h('p', {}, 'The export was deleted.')));
              await load();
            } catch (e) {
              errorNear(del, e);
            }
          });
          return h('div', { class: 'actions' }, sync, del);
        },
      },
    ], records, { empty: key.exportable ? 'This key is not exported to any cloud KMS yet.' : 'This key is not exportable: it was created without "exportable".', caption: 'Cloud exports' });
  }

  const form = key.exportable ? newExportForm(base, async (created) => {
    const r = created.syncState === 'PENDING' || created.syncState === 'RUNNING' ? await settle(created.id) : (await load(), created);
    done(r, 'Export');
  }, progress) : null;

  const c = card('Cloud exports', status, list, form);
  c.id = 'cloud-exports-card';
  load();
  return c;
}

function newExportForm(base, onCreated, progress) {
  const provider = h('select', { name: 'provider' }, Object.entries(PROVIDERS).map(([v, p]) => h('option', { value: v }, p.label)));
  const fields = h('div', {});
  const perms = h('aside', { class: 'permissions', 'aria-label': 'Required permissions' });
  const autoSync = h('input', { type: 'checkbox', id: uid('as'), checked: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Export');
  let inputs = {};

  function draw() {
    const p = PROVIDERS[provider.value];
    inputs = {};
    const make = ([name, label, kind]) => {
      const input = kind === 'textarea'
        ? h('textarea', { name, required: true })
        : h('input', { type: kind === 'password' ? 'password' : 'text', name, required: true, autocomplete: 'off' });
      inputs[name] = input;
      return field(label, input);
    };
    const endpoint = h('input', { type: 'text', name: 'endpoint', autocomplete: 'off' });
    inputs.endpoint = endpoint;
    replace(fields,
      h('fieldset', {}, h('legend', {}, 'Destination'), p.metadata.map(make)),
      h('fieldset', {}, h('legend', {}, 'Credentials'), p.credentials.map(make),
        h('p', { class: 'field-help' }, 'Saved encrypted in the appliance for the syncs to come; never shown again.')),
      h('details', {}, h('summary', {}, 'Advanced'),
        field('Endpoint', endpoint, "Only for a private or emulated endpoint: leave empty for the provider's own.")));
    replace(perms, h('h3', {}, `${p.label}: required permissions`),
      h('ul', {}, p.permissions.map(([role, scope, note]) => h('li', {}, h('strong', {}, role), ` on ${scope}. ${note}`))),
      h('p', { class: 'field-help' }, 'Without them the export fails with an authorization error; role assignments can take a few minutes to apply.'));
  }
  provider.addEventListener('change', draw);
  draw();

  const form = h('form', { class: 'export-form', 'aria-label': 'New cloud export' },
    h('div', { class: 'export-form-fields' },
      h('h3', {}, 'New export'),
      field('Provider', provider), fields,
      h('div', { class: 'check' }, autoSync, h('label', { for: autoSync.id }, 'Auto-sync on every rotation')),
      h('div', { class: 'actions' }, submit)),
    perms);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNear(submit, null);
    const p = PROVIDERS[provider.value];
    const providerMetadata = {};
    for (const [name] of p.metadata) providerMetadata[name] = inputs[name].value.trim();
    if (inputs.endpoint.value.trim()) providerMetadata.endpoint = inputs.endpoint.value.trim();
    const credentials = {};
    for (const [name] of p.credentials) credentials[name] = inputs[name].value;
    progress(`Exporting to ${p.label}…`);
    try {
      const created = await busy(submit, api.post(base, {
        provider: provider.value, providerMetadata, credentials, autoSyncEnabled: autoSync.checked,
      }));
      for (const [name] of p.credentials) inputs[name].value = '';
      await onCreated(created);
    } catch (err) {
      progress('');
      errorNear(submit, err);
    }
  });
  return form;
}
