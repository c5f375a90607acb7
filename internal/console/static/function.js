// function.js: one function: its configuration (memory, timeout and
// environment editable), a test-invoke panel, live logs, versions and
// aliases, its code to download, and its metrics, live and over past
// ranges (charts.js).
import { call, json, fnPath } from './api.js';
import { el, show, errorText, setStatus, act } from './dom.js';
import { usagePanel, eventsPanel, triggersPanel, livePanel } from './activity.js';
import { historyPanel } from './charts.js';

// The invoke panel's text survives a sign-in: it is kept per function in
// sessionStorage as it is typed.
const draftKey = (name) => `owl.invoke.${name}`;

export async function functionPage(name) {
  const fn = await json('GET', fnPath(name));
  const cfg = fn.Configuration;
  const follow = logsPanel(name);
  const [versions, usage, events, triggers] = await Promise.all([
    versionsPanel(name), usagePanel(name), eventsPanel(name), triggersPanel(name)]);
  const live = livePanel(name);
  const history = historyPanel(name);
  show(
    el('p', {}, el('a', { href: '#/' }, '← Functions')),
    el('h1', { id: 'fn-name' }, cfg.FunctionName),
    el('div', { class: 'grid' }, configPanel(cfg), invokePanel(name)),
    follow.section,
    el('div', { class: 'grid' }, versions, codePanel(name, cfg)),
    el('div', { class: 'grid' }, live.section, usage),
    history.section,
    el('div', { class: 'grid' }, triggers, events),
  );
  return () => {
    follow.stop();
    live.stop();
    history.stop();
  };
}

function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function envText(cfg) {
  const vars = (cfg.Environment && cfg.Environment.Variables) || {};
  return Object.entries(vars).map(([k, v]) => `${k}=${v}`).join('\n');
}

function configPanel(cfg) {
  const memory = el('input', { id: 'memory', type: 'number', value: cfg.MemorySize, inputmode: 'numeric' });
  const timeout = el('input', { id: 'timeout', type: 'number', value: cfg.Timeout, inputmode: 'numeric' });
  const env = el('textarea', { id: 'environment', rows: 4, spellcheck: 'false', value: envText(cfg) });
  const status = el('p', { id: 'config-status', role: 'status' });
  const modified = el('dd', { id: 'last-modified' }, cfg.LastModified || '');
  const save = el('button', { type: 'submit', id: 'save-config' }, 'Save');
  const form = el('form', { onsubmit: async (ev) => {
    ev.preventDefault();
    setStatus(status, '', 'Saving…');
    const vars = {};
    for (const line of env.value.split('\n')) {
      if (!line.trim()) continue;
      const i = line.indexOf('=');
      if (i < 1) {
        setStatus(status, 'error', `Each environment line is NAME=value: "${line}" is not.`);
        return;
      }
      vars[line.slice(0, i).trim()] = line.slice(i + 1);
    }
    await act(save, status, async () => {
      const out = await json('PUT', fnPath(cfg.FunctionName, '/configuration'), { body: {
        MemorySize: Number(memory.value), Timeout: Number(timeout.value), Environment: { Variables: vars },
      } });
      memory.value = out.MemorySize;
      timeout.value = out.Timeout;
      env.value = envText(out);
      modified.textContent = out.LastModified || '';
      setStatus(status, 'ok', `Saved: ${out.MemorySize} MB, ${out.Timeout} s.`);
    });
  } },
  el('label', { for: 'memory' }, 'Memory (MB)'), memory,
  el('label', { for: 'timeout' }, 'Timeout (seconds)'), timeout,
  el('label', { for: 'environment' }, 'Environment (NAME=value, one a line)'), env,
  el('div', { class: 'row' }, save), status);
  return el('section', { 'aria-labelledby': 'h-config' },
    el('h2', { id: 'h-config' }, 'Configuration'),
    el('dl', { class: 'facts' },
      el('dt', {}, 'Runtime'), el('dd', {}, cfg.Runtime || ''),
      el('dt', {}, 'Handler'), el('dd', {}, cfg.Handler || ''),
      el('dt', {}, 'Version'), el('dd', {}, cfg.Version || ''),
      el('dt', {}, 'Last modified'), modified),
    form);
}

// report parses a REPORT line's figures.
export function report(log) {
  const line = log.split('\n').find((l) => l.startsWith('REPORT ')) || '';
  const num = (label) => {
    const m = line.match(new RegExp(`${label}: ([0-9.]+) ms`));
    return m ? Number(m[1]) : undefined;
  };
  const rid = line.match(/RequestId: (\S+)/);
  return { requestId: rid ? rid[1] : '', duration: num('Duration'), billed: num('Billed Duration'), init: num('Init Duration') };
}

function decodeLog(b64) {
  if (!b64) return '';
  const bin = atob(b64);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function invokePanel(name) {
  const saved = sessionStorage.getItem(draftKey(name));
  const payload = el('textarea', { id: 'payload', rows: 6, spellcheck: 'false', value: saved ?? '{}',
    oninput: () => sessionStorage.setItem(draftKey(name), payload.value) });
  const status = el('p', { id: 'invoke-status', role: 'status' });
  const response = el('pre', { id: 'invoke-response', hidden: true });
  const tail = el('pre', { id: 'invoke-log', hidden: true });
  const figures = el('div', { id: 'invoke-figures' });
  const button = el('button', { type: 'submit', id: 'invoke' }, 'Invoke');
  const form = el('form', { onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      JSON.parse(payload.value);
    } catch (err) {
      setStatus(status, 'error', `The payload is not JSON: ${err.message}`);
      return;
    }
    setStatus(status, '', 'Invoking…');
    await act(button, status, async () => {
      const resp = await call('POST', fnPath(name, '/invocations'), { body: payload.value, headers: { 'X-Amz-Log-Type': 'Tail' } });
      const text = await resp.text();
      const funcErr = resp.headers.get('X-Amz-Function-Error');
      const log = decodeLog(resp.headers.get('X-Amz-Log-Result'));
      const r = report(log);
      setStatus(status, funcErr ? 'error' : 'ok',
        funcErr ? `The function failed (${funcErr}).` : `Succeeded (version ${resp.headers.get('X-Amz-Executed-Version') || ''}).`);
      response.textContent = text;
      response.hidden = false;
      tail.textContent = log;
      tail.hidden = !log;
      figures.replaceChildren(facts([
        ['Request id', r.requestId],
        ['Duration', r.duration === undefined ? '' : `${r.duration} ms`],
        ['Billed', r.billed === undefined ? '' : `${r.billed} ms`],
        ['Start', r.init === undefined ? 'warm' : `cold (init ${r.init} ms)`],
      ]));
      figures.querySelector('dd:last-child').id = 'invoke-start';
    });
  } },
  el('label', { for: 'payload' }, 'Event (JSON)'), payload,
  el('div', { class: 'row' }, button), status, figures,
  el('h3', {}, 'Response'), response,
  el('h3', {}, 'Log tail'), tail);
  return el('section', { 'aria-labelledby': 'h-invoke' }, el('h2', { id: 'h-invoke' }, 'Test'), form);
}

// logsPanel follows the function's log (GET .../logs?follow=true, the
// stream owl logs --follow reads), optionally of one request id.
function logsPanel(name) {
  const filter = el('input', { id: 'log-request', placeholder: 'all requests', spellcheck: 'false' });
  const lines = el('div', { id: 'log-lines', class: 'log', 'aria-live': 'off' });
  const status = el('span', { id: 'log-status', class: 'muted' }, 'Not following.');
  let abort = null;
  const stop = () => {
    if (abort) abort.abort();
    abort = null;
    button.textContent = 'Follow';
    setStatus(status, 'muted', 'Not following.');
  };
  const append = (text) => {
    const frag = document.createDocumentFragment();
    for (const line of text.split('\n')) frag.append(el('div', {}, line));
    lines.append(frag);
    while (lines.childElementCount > 2000) lines.firstElementChild.remove();
    lines.scrollTop = lines.scrollHeight;
  };
  const start = async () => {
    const ctl = new AbortController();
    abort = ctl;
    button.textContent = 'Stop';
    lines.replaceChildren();
    const q = new URLSearchParams({ follow: 'true' });
    if (filter.value.trim()) q.set('request', filter.value.trim());
    try {
      const resp = await call('GET', `/owl/v1/functions/${encodeURIComponent(name)}/logs?${q}`, { signal: ctl.signal });
      setStatus(status, 'muted', 'Following…');
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let rest = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        rest += value;
        const cut = rest.lastIndexOf('\n');
        if (cut >= 0) {
          append(rest.slice(0, cut));
          rest = rest.slice(cut + 1);
        }
      }
      if (abort === ctl) stop();
    } catch (err) {
      if (ctl.signal.aborted) return;
      if (abort === ctl) stop();
      setStatus(status, 'error', errorText(err));
    }
  };
  const button = el('button', { type: 'button', id: 'follow', onclick: () => (abort ? stop() : start()) }, 'Follow');
  const section = el('section', { 'aria-labelledby': 'h-logs' },
    el('h2', { id: 'h-logs' }, 'Live logs'),
    el('label', { for: 'log-request' }, 'Request id'),
    el('div', { class: 'row' }, filter, button, status),
    lines);
  return { section, stop };
}

// versionsPanel lists the versions (and publishes one) and the aliases:
// each alias's version and the share of its traffic another version
// gets (a slider), editable, and a form to make one.
async function versionsPanel(name, message = '') {
  const [versions, aliases] = await Promise.all([
    json('GET', fnPath(name, '/versions')),
    json('GET', fnPath(name, '/aliases')),
  ]);
  const published = (versions.Versions || []).map((v) => v.Version).filter((v) => v !== '$LATEST');
  const vrows = (versions.Versions || []).map((v) => el('tr', {},
    el('td', {}, v.Version), el('td', {}, v.Description || ''), el('td', {}, v.LastModified || '')));
  const status = el('p', { id: 'versions-status', role: 'status', class: message ? 'ok' : '' }, message);
  // reload draws the panel again from the API, saying what was done.
  const reload = async (done) => section.replaceWith(await versionsPanel(name, done));
  const publish = el('button', { type: 'button', class: 'secondary', id: 'publish', onclick: () => act(publish, status, async () => {
    const v = await json('POST', fnPath(name, '/versions'), { body: {} });
    await reload(`Published version ${v.Version}.`);
  }) }, 'Publish version');
  const arows = (aliases.Aliases || []).map((a) => aliasRow(name, a, published, status));
  const newName = el('input', { id: 'alias-name', placeholder: 'live', spellcheck: 'false' });
  const newVersion = versionSelect('alias-version', published, published[published.length - 1]);
  const create = el('button', { type: 'submit', class: 'secondary', id: 'create-alias' }, 'Create alias');
  const createForm = el('form', { class: 'row', onsubmit: (ev) => {
    ev.preventDefault();
    act(create, status, async () => {
      const a = await json('POST', fnPath(name, '/aliases'), { body: { Name: newName.value.trim(), FunctionVersion: newVersion.value } });
      await reload(`Alias ${a.Name} made: version ${a.FunctionVersion}.`);
    });
  } },
  el('label', { for: 'alias-name' }, 'New alias'), newName,
  el('label', { for: 'alias-version' }, 'to version'), newVersion, create);
  const section = el('section', { 'aria-labelledby': 'h-versions', id: 'versions-panel' },
    el('h2', { id: 'h-versions' }, 'Versions and aliases'),
    el('div', { class: 'tablewrap' }, el('table', { id: 'versions' },
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Version'), el('th', { scope: 'col' }, 'Description'), el('th', { scope: 'col' }, 'Last modified'))),
      el('tbody', {}, vrows))),
    el('div', { class: 'row' }, publish), status,
    el('div', { class: 'tablewrap' }, el('table', { id: 'aliases' },
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Alias'), el('th', { scope: 'col' }, 'Version'),
        el('th', { scope: 'col' }, 'Also routes to'), el('th', { scope: 'col' }, ''))),
      el('tbody', {}, arows.length ? arows : el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'No aliases.'))))),
    published.length ? createForm : el('p', { class: 'muted' }, 'Publish a version to make an alias.'));
  return section;
}

function versionSelect(id, versions, selected, none) {
  const opts = versions.map((v) => el('option', { value: v, selected: v === selected }, v));
  if (none) opts.unshift(el('option', { value: '', selected: !selected }, none));
  return el('select', { id }, opts);
}

// aliasRow is one alias, editable: its version, and another version with
// the share of invocations (0–100 %) it gets.
function aliasRow(name, a, published, status) {
  const weights = Object.entries((a.RoutingConfig && a.RoutingConfig.AdditionalVersionWeights) || {});
  const [extraV, extraW] = weights[0] || ['', 0];
  const id = (part) => `alias-${a.Name}-${part}`;
  const primary = versionSelect(id('version'), published, a.FunctionVersion);
  const extra = versionSelect(id('extra'), published, extraV, 'none');
  const weight = el('input', { id: id('weight'), type: 'range', min: 0, max: 100, step: 1, value: Math.round(extraW * 100) });
  const shown = el('output', { for: id('weight'), id: id('weight-shown') }, `${Math.round(extraW * 100)} %`);
  weight.addEventListener('input', () => { shown.textContent = `${weight.value} %`; });
  const save = el('button', { type: 'button', class: 'secondary', id: id('save'), onclick: () => act(save, status, async () => {
    const body = { FunctionVersion: primary.value, RoutingConfig: { AdditionalVersionWeights: {} } };
    if (extra.value) body.RoutingConfig.AdditionalVersionWeights[extra.value] = Number(weight.value) / 100;
    const out = await json('PUT', fnPath(name, `/aliases/${encodeURIComponent(a.Name)}`), { body });
    const w = Object.entries((out.RoutingConfig && out.RoutingConfig.AdditionalVersionWeights) || {})
      .map(([v, x]) => `${v} at ${Math.round(x * 100)} %`).join(', ');
    setStatus(status, 'ok', `Alias ${out.Name}: version ${out.FunctionVersion}${w ? `, ${w}` : ''}.`);
  }) }, 'Save');
  return el('tr', { 'data-alias': a.Name },
    el('th', { scope: 'row' }, a.Name),
    el('td', {}, el('label', { for: id('version'), class: 'sr-only' }, `Version of ${a.Name}`), primary),
    el('td', {}, el('label', { for: id('extra'), class: 'sr-only' }, `Other version of ${a.Name}`), extra,
      el('label', { for: id('weight'), class: 'sr-only' }, `Share of the other version of ${a.Name}`), weight, shown),
    el('td', {}, save));
}

// toBase64 encodes bytes for a JSON ZipFile, in chunks (a spread of a
// large array overflows the call stack).
function toBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

// codePanel shows the code's size and hash, downloads it, and uploads a
// new zip (UpdateFunctionCode).
function codePanel(name, cfg) {
  const sha = el('dd', { id: 'code-sha' }, cfg.CodeSha256 || '');
  const size = el('dd', { id: 'code-size' }, `${cfg.CodeSize} bytes`);
  const file = el('input', { id: 'code-file', type: 'file', accept: '.zip,application/zip' });
  const status = el('p', { id: 'code-status', role: 'status' });
  const upload = el('button', { type: 'submit', id: 'upload' }, 'Upload');
  // A plain link would send the cookie without the CSRF header: the zip
  // is fetched, then saved from a blob.
  const downloadStatus = el('span', { id: 'download-status', role: 'status' });
  const download = el('button', { type: 'button', class: 'secondary', id: 'download', onclick: () => act(download, downloadStatus, async () => {
    const resp = await call('GET', `/owl/v1/functions/${encodeURIComponent(name)}/code`);
    const url = URL.createObjectURL(await resp.blob());
    el('a', { href: url, download: `${name}.zip` }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60e3);
    setStatus(downloadStatus, 'ok', 'Downloaded.');
  }) }, 'Download the zip');
  const form = el('form', { onsubmit: async (ev) => {
    ev.preventDefault();
    if (!file.files.length) {
      setStatus(status, 'error', 'Choose a zip first.');
      return;
    }
    setStatus(status, '', 'Uploading…');
    await act(upload, status, async () => {
      const bytes = new Uint8Array(await file.files[0].arrayBuffer());
      const out = await json('PUT', fnPath(name, '/code'), { body: { ZipFile: toBase64(bytes) } });
      sha.textContent = out.CodeSha256;
      size.textContent = `${out.CodeSize} bytes`;
      setStatus(status, 'ok', `Uploaded: ${out.CodeSize} bytes.`);
    });
  } },
  el('label', { for: 'code-file' }, 'New code (a zip)'), file,
  el('div', { class: 'row' }, upload), status);
  return el('section', { 'aria-labelledby': 'h-code' },
    el('h2', { id: 'h-code' }, 'Code'),
    el('dl', { class: 'facts' }, el('dt', {}, 'Size'), size, el('dt', {}, 'SHA-256'), sha),
    el('div', { class: 'row' }, download, downloadStatus),
    form);
}
