// One managed key: its facts, versions (enable/disable), public key (PEM and JWK),
// rotation, scheduled destruction, and the Cloud Exports card.

import { api } from '../api.js';
import { link } from '../router.js';
import {
  h, replace, field, errorNear, table, busy, badge, loading, pageHeader, card, facts, notice,
  copyButton, confirmDialog, formatTime,
} from '../dom.js';
import { stateWord } from './keys.js';
import { exportsCard } from './cloud_exports.js';

export async function render(root, params, ctx) {
  const path = `/api/v1/keys/${encodeURIComponent(params.name)}`;
  replace(root, pageHeader('Key'), loading('Loading the key…'));
  let key;
  try {
    key = await api.get(path);
  } catch (e) {
    if (!ctx.alive()) return;
    replace(root, pageHeader('Key'), notice('error', e.messages ? e.messages.map((m) => h('p', {}, m)) : e.message),
      h('p', {}, link('/keys', 'Back to keys')));
    return;
  }
  if (!ctx.alive()) return;
  const exports = exportsCard(key, ctx);
  const body = h('div', {});
  const draw = (k) => {
    key = k;
    replace(body, summary(k, draw), versions(k, path, draw), publicKey(k), destruction(k, path, draw));
  };
  draw(key);
  replace(root, h('p', { class: 'crumbs' }, link('/keys', 'Keys')), pageHeader(key.name), body, exports);
}

function summary(k, draw) {
  const rotate = h('button', { type: 'button', class: 'btn btn-primary', id: 'rotate' }, 'Rotate');
  rotate.addEventListener('click', async () => {
    errorNear(rotate, null);
    try {
      draw(await busy(rotate, api.post(`/api/v1/keys/${encodeURIComponent(k.id)}/rotate`)));
      document.getElementById('rotate')?.focus();
    } catch (e) {
      errorNear(rotate, e);
    }
  });
  return card('Summary',
    facts([
      ['Id', h('span', { class: 'mono' }, k.id)],
      ['Algorithm', k.algorithm],
      ['Usage', k.usage],
      ['State', badge(stateWord(k.state))],
      ['Primary version', h('span', { id: 'primary-version' }, String(k.primaryVersion))],
      ['Protection', k.protection || '—'],
      ['Exportable', k.exportable ? 'Yes' : 'No'],
      ['Labels', Object.keys(k.labels || {}).length
        ? Object.entries(k.labels).map(([a, b]) => h('span', { class: 'tag' }, `${a}=${b}`)) : '—'],
      ['Created', formatTime(k.createTime)],
    ]),
    h('div', { class: 'actions' }, rotate));
}

function versions(k, path, draw) {
  const rows = [...k.versions].sort((a, b) => b.version - a.version);
  return card('Versions', table([
    { label: 'Version', render: (v) => (v.version === k.primaryVersion ? [String(v.version), ' ', badge('primary', 'ok')] : String(v.version)) },
    { label: 'State', render: (v) => badge(stateWord(v.state)) },
    { label: 'Protection', key: 'protection' },
    { label: 'Created', render: (v) => formatTime(v.createTime) },
    {
      label: 'Action',
      render: (v) => {
        const enabled = v.state === 'ENABLED';
        const b = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `${enabled ? 'Disable' : 'Enable'} version ${v.version}` },
          enabled ? 'Disable' : 'Enable');
        b.addEventListener('click', async () => {
          errorNear(b, null);
          try {
            draw(await busy(b, api.post(`${path}/versions/${v.version}/${enabled ? 'disable' : 'enable'}`)));
          } catch (e) {
            errorNear(b, e);
          }
        });
        return b;
      },
    },
  ], rows, { caption: `Versions of ${k.name}` }));
}

function publicKey(k) {
  if (!k.publicKeyPem && !k.publicKeyJwk) {
    return card('Public key', h('p', { class: 'muted' }, `${k.algorithm} is a secret key: it has no public part.`));
  }
  const jwk = k.publicKeyJwk ? JSON.stringify(k.publicKeyJwk, null, 2) : '';
  return card('Public key',
    k.publicKeyPem ? [h('div', { class: 'split-head' }, h('h3', {}, 'PEM'), copyButton(k.publicKeyPem, 'Copy PEM')),
      h('pre', { id: 'public-pem', tabindex: '0' }, k.publicKeyPem)] : null,
    jwk ? [h('div', { class: 'split-head' }, h('h3', {}, 'JWK'), copyButton(jwk, 'Copy JWK')),
      h('pre', { id: 'public-jwk', tabindex: '0' }, jwk)] : null);
}

function destruction(k, path, draw) {
  if (k.state === 'PENDING_DESTRUCTION') {
    const cancel = h('button', { type: 'button', class: 'btn', id: 'cancel-destruction' }, 'Cancel destruction');
    cancel.addEventListener('click', async () => {
      errorNear(cancel, null);
      try {
        draw(await busy(cancel, api.post(`${path}/cancel-destruction`)));
      } catch (e) {
        errorNear(cancel, e);
      }
    });
    return card('Destruction',
      notice('warn', h('p', { id: 'destroy-time' }, `This key will be destroyed on ${formatTime(k.destroyTime)}.`),
        h('p', {}, 'Its material is erased then; until that time the destruction can be cancelled.')),
      h('div', { class: 'actions' }, cancel));
  }
  const days = h('input', { type: 'number', min: '1', max: '30', value: '7', name: 'days' });
  const schedule = h('button', { type: 'button', class: 'btn btn-danger', id: 'schedule-destruction' }, 'Schedule destruction');
  schedule.addEventListener('click', async () => {
    errorNear(schedule, null);
    const n = Number(days.value);
    if (!(await confirmDialog(`Destroy key ${k.name} in ${n} day(s)? Every version's material is erased then.`, { confirm: 'Schedule destruction' }))) return;
    try {
      draw(await busy(schedule, api.post(`${path}/schedule-destruction`, { pendingWindowSeconds: Math.round(n * 86400) })));
    } catch (e) {
      errorNear(schedule, e);
    }
  });
  return card('Destruction', field('Days before destruction', days, '1 to 30 days. The key is unusable meanwhile, and the destruction can be cancelled.'),
    h('div', { class: 'actions' }, schedule));
}
