// Audit: the latest lines of an audit device (newest first), filtered by path,
// operation, outcome and time, and the result of checking the device's hash chain.

import { api } from '../api.js';
import {
  h, replace, field, errorNear, table, busy, badge, loading, pageHeader, card, notice, facts, formatTime,
} from '../dom.js';

const OPERATIONS = ['create', 'read', 'update', 'delete', 'list'];
const OUTCOMES = ['success', 'denied', 'error'];

function opt(values, any) {
  return [h('option', { value: '' }, any), values.map((v) => h('option', { value: v }, v))];
}

/** A datetime-local value (the reader's time) as RFC 3339. */
function rfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export async function render(root, params, ctx) {
  replace(root, pageHeader('Audit'), loading('Loading audit devices…'));
  let devices = [];
  try {
    const r = await api.get('/v1/sys/audit');
    const data = r.data || r;
    devices = Object.entries(data).filter(([, d]) => d && d.type).map(([p]) => p);
  } catch (e) {
    if (ctx.alive()) replace(root, pageHeader('Audit'), notice('error', (e.messages || [e.message]).map((m) => h('p', {}, m))));
    return;
  }
  if (!ctx.alive()) return;
  if (!devices.length) {
    replace(root, pageHeader('Audit'), notice('info', h('p', {}, 'No audit device is enabled: nothing is being recorded.')));
    return;
  }
  const device = h('select', { name: 'device' }, devices.map((d) => h('option', { value: d }, d)));
  const path = h('input', { type: 'search', name: 'path', autocomplete: 'off' });
  const operation = h('select', { name: 'operation' }, opt(OPERATIONS, 'Any operation'));
  const outcome = h('select', { name: 'outcome' }, opt(OUTCOMES, 'Any outcome'));
  const since = h('input', { type: 'datetime-local', name: 'since' });
  const until = h('input', { type: 'datetime-local', name: 'until' });
  const apply = h('button', { type: 'submit', class: 'btn' }, 'Filter');
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter audit entries' },
    field('Device', device), field('Path contains', path), field('Operation', operation), field('Outcome', outcome),
    field('From', since), field('To', until), h('div', { class: 'actions' }, apply));
  const entries = h('div', { id: 'audit-entries' });
  const chain = h('div', { id: 'audit-chain' });
  const verify = h('button', { type: 'button', class: 'btn' }, 'Verify again');

  async function loadEntries() {
    errorNear(apply, null);
    replace(entries, loading('Loading entries…'));
    try {
      const r = await api.get('/api/v1/audit/entries', {
        device: device.value, path: path.value.trim(), operation: operation.value, outcome: outcome.value,
        since: rfc3339(since.value), until: rfc3339(until.value), type: 'response', limit: 50,
      });
      if (!ctx.alive()) return;
      replace(entries, table([
        { label: 'Time', render: (e) => formatTime(e.line.time) },
        { label: 'Operation', render: (e) => e.line.request?.operation || '—' },
        { label: 'Path', render: (e) => h('span', { class: 'mono' }, e.line.request?.path || '—') },
        { label: 'Who', render: (e) => e.line.auth?.display_name || '—' },
        { label: 'Outcome', render: (e) => badge(e.outcome) },
        { label: 'Status', render: (e) => String(e.line.response?.status ?? '—') },
        { label: 'Error', render: (e) => e.line.error || '' },
      ], r.entries, { empty: 'No entry matches these filters.', caption: 'Latest entries, newest first' }));
    } catch (e) {
      replace(entries);
      errorNear(apply, e);
    }
  }

  async function loadChain() {
    errorNear(verify, null);
    replace(chain, loading('Checking the hash chain…'));
    try {
      const r = await busy(verify, api.get('/api/v1/audit/verify', { device: device.value }));
      if (!ctx.alive()) return;
      const intact = !r.broken && !(r.behind || []).length && r.stored_head_found !== false;
      const problems = [];
      if (r.broken) problems.push(`Line ${r.broken[0]} (byte ${r.broken[1]}): ${r.broken[2]}`);
      for (const [seq, why] of r.behind || []) problems.push(`Behind the stored head at line ${seq}: ${why}`);
      for (const c of r.cuts || []) problems.push(`Cut: ${typeof c === 'string' ? c : (c.reason || JSON.stringify(c))}`);
      replace(chain,
        notice(intact ? 'ok' : 'error', h('p', { id: 'chain-result' }, intact
          ? `The hash chain of ${r.device} is intact.`
          : `The hash chain of ${r.device} is broken${r.stored_head_found === false ? ': the file no longer reaches the head recorded in storage' : ''}.`)),
        facts([
          ['File', h('span', { class: 'mono' }, r.file_path || '—')],
          ['Lines checked', String(r.lines ?? '—')],
          ['Signatures checked', r.macs_checked ? 'Yes, with the chain key' : 'No'],
          ['Problems', problems.length ? problems.map((p) => h('p', {}, p)) : 'None'],
        ]));
    } catch (e) {
      replace(chain);
      errorNear(verify, e);
    }
  }

  filters.addEventListener('submit', (e) => { e.preventDefault(); loadEntries(); });
  device.addEventListener('change', () => { loadEntries(); loadChain(); });
  verify.addEventListener('click', loadChain);
  replace(root, pageHeader('Audit'),
    card('Hash-chain verification', chain, h('div', { class: 'actions' }, verify)),
    card('Entries', filters, entries));
  await Promise.all([loadEntries(), loadChain()]);
}
