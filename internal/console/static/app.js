// app.js: the console's entry: sign-in, sign-out and the router
// (#/ the functions, #/fn/NAME a function, #/dashboard every function's
// metric history, #/nodes the cluster's nodes, #/nodes/NAME with NAME's
// environments).
import { call, csrf, json, setCSRF, SignedOutError } from './api.js';
import { el, show, errorText } from './dom.js';
import { functionsPage } from './functions.js';
import { functionPage } from './function.js';
import { dashboardPage } from './charts.js';
import { nodesPage } from './nodes.js';

let signedIn = false;
let leave = null; // the current page's clean-up (a log follow to stop)

function signInPage(message) {
  signedIn = false;
  document.getElementById('nav').hidden = true;
  if (leave) { leave(); leave = null; }
  const token = el('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true });
  const status = el('p', { id: 'signin-error', class: 'error', role: 'alert' }, message || '');
  const submit = el('button', { type: 'submit' }, 'Sign in');
  const form = el('form', { class: 'signin', onsubmit: async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    status.textContent = '';
    try {
      const s = await json('POST', '/console/session', { body: { token: token.value } });
      setCSRF(s.csrf);
      signedIn = true;
      route();
    } catch (err) {
      status.textContent = err.status === 403
        ? `That token was not accepted (${errorText(err)}). Use the token \`owl credentials\` prints.`
        : `Sign-in failed: ${errorText(err)}`;
    } finally {
      submit.disabled = false;
    }
  } },
  el('h1', {}, 'Sign in to Owl'),
  el('label', { for: 'token' }, 'Owl token'),
  token,
  el('p', { class: 'muted' }, 'The bearer token of this server: run ', el('code', {}, 'owl credentials'), ' on its host.'),
  el('div', { class: 'row' }, submit),
  status);
  show(form);
  token.focus();
}

async function route() {
  if (!signedIn) return;
  if (leave) { leave(); leave = null; }
  document.getElementById('nav').hidden = false;
  const hash = location.hash || '#/';
  const m = hash.match(/^#\/fn\/(.+)$/);
  const node = hash.match(/^#\/nodes(?:\/(.+))?$/);
  try {
    if (m) leave = await functionPage(decodeURIComponent(m[1]));
    else if (hash === '#/dashboard') leave = dashboardPage();
    else if (node) leave = nodesPage(node[1] ? decodeURIComponent(node[1]) : '');
    else await functionsPage();
  } catch (err) {
    if (err instanceof SignedOutError) return;
    show(el('p', { class: 'error', role: 'alert' }, errorText(err)));
  }
  document.getElementById('main').focus({ preventScroll: true });
}

window.addEventListener('hashchange', route);
window.addEventListener('owl:signedout', (ev) => {
  if (signedIn) signInPage(`Your session has ended (${ev.detail.message}). Sign in again; what you typed is kept.`);
});
document.getElementById('signout').addEventListener('click', async () => {
  try { await call('DELETE', '/console/session'); } catch { /* gone already */ }
  setCSRF('');
  signInPage('Signed out.');
});

// start resumes this tab's session (a reload), else asks to sign in: a
// new tab signs in again, its token being this tab's alone.
async function start() {
  if (!csrf()) {
    signInPage('');
    return;
  }
  try {
    await json('GET', '/console/session');
    signedIn = true;
    route();
  } catch {
    setCSRF('');
    signInPage('');
  }
}
start();
