// The appliance's status page, and the two wizards that come before it: initialise a
// new appliance, unseal a sealed one. Which one shows follows the seal status, whatever
// the address: /ui/init on an initialised appliance shows the unseal wizard or status.

import { api } from '../api.js';
import {
  h, replace, field, errorNear, busy, badge, card, facts, notice, table, loading, pageHeader,
  copyButton, emptyState,
} from '../dom.js';

/** The hardware seal's `seal_error` categories, in words an operator can act on. */
const SEAL_ERRORS = {
  hsm_pin_incorrect: 'The HSM refused the PIN: check the seal\'s pin_file (or VAULT_HSM_PIN).',
  hsm_pin_locked: 'The HSM has locked the PIN after too many wrong attempts: unlock it with the HSM\'s security officer.',
  hsm_pin_unavailable: 'No PIN for the HSM: the seal\'s pin_file is missing or empty, and VAULT_HSM_PIN is not set.',
  hsm_unreachable: 'The HSM cannot be reached: check that its PKCS#11 library, slot and network path are available.',
  hsm_error: 'The HSM answered with an error: the daemon\'s log has its words.',
  tpm_unreachable: 'The TPM cannot be reached: check the seal\'s tcti setting and the TPM device.',
  tpm_error: 'The TPM answered with an error: the daemon\'s log has its words.',
  tpm_policy_mismatch: 'The TPM refused to unseal: the platform state (PCR values) is not the one the key was sealed to.',
  device_mismatch: 'The seal device holds another appliance\'s root key: this is not the device this appliance was initialised with.',
  root_key_unsafe: 'The root key on the device has unsafe attributes (for example, extractable): the appliance will not use it.',
  root_key_ambiguous: 'The device holds more than one key with the root key\'s label: remove the extra one.',
  seal_config_invalid: 'The seal block of the configuration is invalid: the daemon\'s log says which setting.',
  seal_config_mismatch: 'The configured seal is not the one this appliance was initialised with: restore the seal block, or migrate the seal.',
  unseal_keys_invalid: 'The keys given do not open this appliance: start again with the right keys.',
  rng_failure: 'The random number generator failed: the appliance will not run without it.',
  storage_error: 'The storage backend could not be read: check the disk and the daemon\'s log.',
  storage_corrupt: 'The stored data is damaged: restore from a backup.',
  not_initialized: 'The appliance is not initialised.',
  seal_error: 'The seal could not open the appliance: the daemon\'s log has the details.',
};

// FoundationDB's own account of its cluster (sys/appliance's `replication`): what an
// operator checks first, with what the cluster did not report left unknown.
function replication(c) {
  if (!c) return 'None (single node)';
  if (c.error) return badge(c.error, 'danger');
  const known = (v, yes, no) => (v == null ? 'unknown' : v ? yes : no);
  const parts = [
    `available: ${known(c.available, 'yes', 'no')}`,
    `healthy: ${known(c.healthy, 'yes', 'no')}`,
    `coordinators: ${known(c.coordinators_reachable, 'reachable', 'unreachable')}`,
    c.recovery_state && `recovery: ${c.recovery_state}`,
    c.redundancy_mode && `redundancy: ${c.redundancy_mode}`,
    c.zone_failures_tolerated != null && `zone failures tolerated: ${c.zone_failures_tolerated}`,
    c.machines != null && `${c.machines} machines, ${c.processes ?? '?'} processes`,
    ...(c.messages || []),
  ].filter(Boolean);
  const good = c.available && c.healthy && c.coordinators_reachable;
  return [badge(good ? 'FoundationDB: healthy' : 'FoundationDB: check', good ? 'ok' : 'warn'), ' ', parts.join('; ')];
}

export function sealErrorWords(category) {
  return SEAL_ERRORS[category] || `The seal could not open the appliance (${category}).`;
}

const isHardware = (s) => Boolean(s.recovery_seal) || (s.type && s.type !== 'shamir');

export async function render(root, params, ctx) {
  const seal = ctx.seal && !ctx.seal.error ? ctx.seal : await api.get('/v1/sys/seal-status');
  if (!seal.initialized) return initWizard(root, seal, ctx);
  if (seal.sealed) return unsealWizard(root, seal, ctx);
  if (params.view !== 'status') {
    // The appliance is open: the wizards have nothing left to do.
    ctx.navigate(ctx.session.signed_in ? '/status' : '/signin', { replace: true });
    return undefined;
  }
  return statusPage(root, seal, ctx);
}

// ---- init ---------------------------------------------------------------------------

function numberInput(id, value, min, max) {
  return h('input', { type: 'number', id, name: id, value: String(value), min: String(min), max: String(max), required: true, inputmode: 'numeric' });
}

function initWizard(root, seal, ctx) {
  const hardware = isHardware(seal);
  const what = hardware ? 'recovery' : 'unseal';
  const shares = numberInput('shares', 5, 1, 255);
  const threshold = numberInput('threshold', 3, 1, 255);
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Initialise');
  const form = h('form', { class: 'form', novalidate: true },
    field(hardware ? 'Recovery key shares' : 'Key shares', shares,
      `How many ${what} keys to make: one for each custodian.`),
    field(hardware ? 'Recovery key threshold' : 'Key threshold', threshold,
      hardware
        ? 'How many recovery keys it takes to authorise recovery operations (root token generation, unsealing after a manual seal).'
        : 'How many of those keys it takes to unseal the appliance.'),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNear(submit, null);
    const n = Number(shares.value);
    const t = Number(threshold.value);
    const body = hardware
      ? { recovery_shares: n, recovery_threshold: t }
      : { secret_shares: n, secret_threshold: t };
    try {
      const result = await busy(submit, api.put('/v1/sys/init', body));
      showKeys(root, result, hardware, ctx);
      await ctx.refreshSeal();
    } catch (err) {
      errorNear(submit, err);
    }
  });
  replace(root,
    pageHeader('Initialise the appliance'),
    h('ol', { class: 'steps', 'aria-label': 'Steps' },
      h('li', { 'aria-current': 'step' }, '1. Choose the keys'),
      h('li', {}, '2. Save the keys'),
      h('li', {}, hardware ? '3. Sign in' : '3. Unseal')),
    notice('info', h('p', {}, hardware
      ? `This appliance's root key is protected by its ${seal.type.toUpperCase()} seal, which unseals it on its own. Initialising makes recovery keys, split among custodians, and the first root token.`
      : 'Initialising makes the root key, splits the key that protects it into unseal keys for custodians, and makes the first root token.')),
    card(hardware ? 'Recovery keys' : 'Unseal keys', form));
  shares.focus();
}

function showKeys(root, result, hardware, ctx) {
  const keys = (hardware ? result.recovery_keys_base64 || result.recovery_keys : result.keys_base64 || result.keys) || [];
  const saved = h('input', { type: 'checkbox', id: 'saved-keys' });
  const next = h('button', { type: 'button', class: 'btn btn-primary', disabled: true }, hardware ? 'Continue to sign in' : 'Continue to unseal');
  saved.addEventListener('change', () => { next.disabled = !saved.checked; });
  next.addEventListener('click', async () => {
    // The keys leave the page here: nothing keeps a copy.
    replace(root, loading());
    await ctx.refreshSeal();
    ctx.navigate(hardware ? '/signin' : '/unseal', { replace: true });
  });
  const keyList = h('ol', { class: 'keys-list', 'aria-label': hardware ? 'Recovery keys' : 'Unseal keys' },
    keys.map((k, i) => h('li', {}, h('span', { class: 'key-number' }, `Key ${i + 1}`), h('code', { class: 'key-value' }, k), copyButton(k))));
  replace(root,
    pageHeader('Save the keys'),
    h('ol', { class: 'steps', 'aria-label': 'Steps' },
      h('li', {}, '1. Choose the keys'),
      h('li', { 'aria-current': 'step' }, '2. Save the keys'),
      h('li', {}, hardware ? '3. Sign in' : '3. Unseal')),
    notice('warn',
      h('p', {}, h('strong', {}, 'These keys and the root token are shown only once.')),
      h('p', {}, 'Give each key to a different custodian and store it offline. Ironseal keeps no copy: lost keys cannot be shown again, and without enough of them a sealed appliance cannot be opened.')),
    card(hardware ? 'Recovery keys' : 'Unseal keys', keyList,
      h('p', { class: 'field-help' }, `${keys.length} keys; ${result.keys_base64 || result.recovery_keys_base64 ? 'base64' : 'hex'} encoded.`)),
    card('Initial root token',
      h('p', { class: 'secret-line' }, h('code', { class: 'key-value', id: 'root-token' }, result.root_token), copyButton(result.root_token)),
      h('p', { class: 'field-help' }, 'It can do anything: use it to set up policies and tokens for people, then revoke it.')),
    h('div', { class: 'card' },
      h('div', { class: 'check' }, saved, h('label', { for: 'saved-keys' }, 'I have saved the keys and the root token')),
      h('div', { class: 'actions' }, next)));
  saved.focus();
}

// ---- unseal -------------------------------------------------------------------------

function progressText(s) {
  return `${s.progress} of ${s.t} keys`;
}

function unsealWizard(root, seal, ctx) {
  const hardware = isHardware(seal);
  const label = hardware ? 'Recovery key' : 'Unseal key';
  const key = h('input', { type: 'password', id: 'unseal-key', name: 'key', autocomplete: 'off', spellcheck: 'false', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Submit key');
  const reset = h('button', { type: 'button', class: 'btn' }, 'Start over');
  const meter = h('progress', { max: String(seal.t || 1), value: String(seal.progress), 'aria-labelledby': 'unseal-progress' });
  const progress = h('p', { id: 'unseal-progress', class: 'progress-text', 'aria-live': 'polite' }, `Unseal progress: ${progressText(seal)}`);
  const problem = h('div', { id: 'seal-error' });

  const show = (s) => {
    meter.max = s.t || 1;
    meter.value = s.progress;
    progress.textContent = `Unseal progress: ${progressText(s)}`;
    replace(problem, s.seal_error
      ? notice('error', h('p', {}, h('strong', {}, 'The hardware seal did not unseal the appliance. ')), h('p', { id: 'seal-error-words' }, sealErrorWords(s.seal_error)))
      : null);
  };

  let finished = false;
  const done = async () => {
    if (finished) return;
    finished = true;
    await ctx.refreshSeal();
    const go = h('button', { type: 'button', class: 'btn btn-primary' }, ctx.session.signed_in ? 'Go to status' : 'Sign in');
    go.addEventListener('click', () => ctx.navigate(ctx.session.signed_in ? '/status' : '/signin'));
    replace(root, pageHeader('Unsealed'),
      notice('ok', h('p', { id: 'unsealed' }, 'The appliance is unsealed and serving requests.')),
      h('div', { class: 'actions' }, go));
    go.focus();
  };

  const form = h('form', { class: 'form', novalidate: true },
    field(label, key, hardware
      ? 'The hardware seal unseals on its own; after a manual seal, recovery keys open it again.'
      : `Each custodian enters their key in turn; ${seal.t} are needed.`),
    h('div', { class: 'actions' }, submit, reset));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNear(key, null);
    if (!key.value.trim()) {
      errorNear(key, `Enter an ${label.toLowerCase()}.`);
      key.focus();
      return;
    }
    try {
      const s = await busy(submit, api.put('/v1/sys/unseal', { key: key.value.trim() }));
      key.value = '';
      if (!s.sealed) { await done(); return; }
      show(s);
      key.focus();
    } catch (err) {
      key.value = '';
      errorNear(key, err);
      key.focus();
    }
  });
  reset.addEventListener('click', async () => {
    errorNear(key, null);
    try {
      show(await busy(reset, api.put('/v1/sys/unseal', { reset: true })));
    } catch (err) {
      errorNear(key, err);
    }
  });

  replace(root,
    pageHeader('Unseal the appliance'),
    notice('info', h('p', {}, 'The appliance is sealed: its keys are not in memory and it serves no requests until it is unsealed.')),
    problem,
    card('Progress', meter, progress),
    card(`Enter ${hardware ? 'a recovery' : 'an unseal'} key`, form));
  show(seal);
  key.focus();

  // A hardware seal may open on its own (the device came back): follow it.
  const poll = async () => {
    if (!ctx.alive() || finished) return;
    try {
      const s = await api.get('/v1/sys/seal-status');
      if (!ctx.alive() || finished) return;
      if (!s.sealed) { await done(); return; }
      if (s.progress !== Number(meter.value) || s.seal_error !== seal.seal_error) show(s);
    } catch {
      // Unreachable for a moment: the next poll tries again.
    }
    setTimeout(poll, 3000);
  };
  setTimeout(poll, 3000);
}

// ---- status -------------------------------------------------------------------------

async function statusPage(root, seal, ctx) {
  const hardware = isHardware(seal);
  const storage = h('div', {}, loading());
  const audit = h('div', {}, loading());
  const listener = ctx.session.listener || {};
  replace(root,
    pageHeader('Appliance status'),
    h('div', { class: 'cards' },
      card('Seal',
        facts([
          ['State', badge(seal.sealed ? 'Sealed' : 'Unsealed', seal.sealed ? 'danger' : 'ok')],
          ['Initialised', seal.initialized ? 'Yes' : 'No'],
          ['Seal type', seal.type === 'shamir' ? 'Shamir (unseal keys)' : `${seal.type.toUpperCase()} (hardware)`],
          [hardware ? 'Recovery keys' : 'Unseal keys', `${seal.t} of ${seal.n} needed`],
          ['Version', `Ironseal ${seal.ironseal_version || seal.version} (OpenBao API ${seal.version})`],
        ])),
      card('Storage', storage),
      card('TLS',
        listener.tls
          ? facts([
            ['Listener', badge('TLS', 'ok')],
            ['Certificate SHA-256', h('code', { id: 'tls-fingerprint', class: 'fingerprint' }, listener.cert_sha256)],
          ])
          : facts([['Listener', badge('Plain HTTP', 'warn')], ['Certificate', 'None: TLS is off on this listener']]))),
    card('Audit devices', audit));

  try {
    const r = await api.get('/v1/sys/appliance');
    const st = r.data.storage;
    replace(storage, facts([
      ['Backend', st.type],
      ['Health', badge(st.healthy ? 'Healthy' : 'Unhealthy', st.healthy ? 'ok' : 'danger')],
      ['Probe read', `${st.latency_ms} ms`],
      ['Last commit', st.last_commit_ms == null ? 'None since start' : `${st.last_commit_ms} ms`],
      ...(st.error ? [['Problem', st.error]] : []),
      ['Replication', replication(r.data.replication)],
      ...(st.shared ? [
        ['This node', r.data.cluster.node_id],
        ['Periodic tasks run on', r.data.cluster.periodic_runner || 'No node (all sealed)'],
      ] : []),
    ]));
  } catch (err) {
    replace(storage, facts([['Backend', seal.storage_type]]), notice('warn', h('p', {}, `Health not shown: ${err.message}`)));
  }

  try {
    const r = await api.get('/v1/sys/audit');
    const devices = Object.entries(r.data || r).filter(([, v]) => v && typeof v === 'object' && v.type)
      .map(([path, v]) => ({ path, ...v }));
    replace(audit, table([
      { label: 'Path', render: (d) => h('code', {}, d.path) },
      { label: 'Type', key: 'type' },
      { label: 'Target', render: (d) => (d.options && (d.options.file_path || d.options.address)) || '—' },
      { label: 'Description', render: (d) => d.description || '—' },
    ], devices, { empty: 'No audit device is enabled: requests are not being recorded.' }));
  } catch (err) {
    replace(audit, err.status === 403
      ? emptyState('Your token may not list audit devices (it needs sudo on sys/audit).')
      : notice('error', h('p', {}, err.message)));
  }
}
