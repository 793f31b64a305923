// Sign in with a token. The token goes to the daemon once, which binds it to a new
// session; the page keeps no copy of it.

import { session } from '../api.js';
import { h, field, errorNear, busy, notice, card } from '../dom.js';

export function render(root, _params, ctx) {
  const input = h('input', {
    type: 'password',
    name: 'token',
    id: 'token',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
  });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'form', novalidate: true },
    field('Token', input, 'A Vault token: the root token from initialisation, or one an administrator created for you.'),
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNear(input, null);
    const token = input.value.trim();
    if (!token) {
      errorNear(input, 'Enter a token.');
      input.focus();
      return;
    }
    try {
      const s = await busy(submit, session.signIn(token));
      input.value = '';
      await ctx.signedIn(s);
    } catch (err) {
      errorNear(input, err);
      input.focus();
    }
  });
  root.append(
    h('div', { class: 'signin' },
      h('h1', {}, 'Sign in to Ironseal'),
      ctx.reason ? notice('warn', h('p', { id: 'signin-reason' }, ctx.reason)) : null,
      card('With a token', form)),
  );
  input.focus();
}
