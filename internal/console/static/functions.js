// functions.js: the functions page: every function with its runtime,
// memory and last change, and over the last hour its invocations and
// errors (GET /owl/v1/usage), with the duration p99 since the server
// started (GET /metrics, the histogram owl top reads).
import { json } from './api.js';
import { scrape, quantile, duration } from './metrics.js';
import { el, show, sparkline } from './dom.js';

// listAll pages through ListFunctions (50 a page, as Lambda).
export async function listAll() {
  const out = [];
  let marker = '';
  for (;;) {
    const q = new URLSearchParams({ MaxItems: '50' });
    if (marker) q.set('Marker', marker);
    const page = await json('GET', `/2015-03-31/functions/?${q}`);
    out.push(...(page.Functions || []));
    if (!page.NextMarker) return out;
    marker = page.NextMarker;
  }
}

async function usageLastHour() {
  const since = new Date(Date.now() - 3600e3).toISOString().replace(/\.\d+Z$/, 'Z');
  const r = await json('GET', `/owl/v1/usage?since=${encodeURIComponent(since)}`);
  const by = new Map();
  for (const row of r.Usage || []) by.set(row.Function, row);
  return by;
}

// Usage ranges: how many periods of which size (the usage API's by).
export const ranges = {
  '24h': { n: 24, by: 'hour', ms: 3600e3, label: '24 hours, by hour' },
  '7d': { n: 7, by: 'day', ms: 86400e3, label: '7 days, by day' },
  '30d': { n: 30, by: 'day', ms: 86400e3, label: '30 days, by day' },
};

// usageSeries returns, per function, its invocations in each period of
// range (a key of ranges) up to now, oldest first, and its totals
// (GET /owl/v1/usage?by=hour|day); with fn, only fn's.
export async function usageSeries(fn, range = '24h') {
  const { n, by, ms } = ranges[range];
  const first = Math.floor(Date.now() / ms) * ms - (n - 1) * ms;
  const q = new URLSearchParams({ since: new Date(first).toISOString().replace(/\.\d+Z$/, 'Z'), by });
  if (fn) q.set('function', fn);
  const r = await json('GET', `/owl/v1/usage?${q}`);
  const out = new Map();
  for (const row of r.Usage || []) {
    const i = Math.round((Date.parse(row.Period) - first) / ms);
    if (i < 0 || i >= n) continue;
    if (!out.has(row.Function)) out.set(row.Function, { invocations: new Array(n).fill(0), gbs: 0, billedMs: 0, errors: 0 });
    const u = out.get(row.Function);
    u.invocations[i] += row.Invocations;
    u.gbs += row.GBSeconds;
    u.billedMs += row.BilledMs;
    u.errors += row.Errors;
  }
  return out;
}

// p99s is each function's duration p99 since the server started.
async function p99s() {
  const { fns } = await scrape();
  return new Map([...fns].map(([fn, f]) => [fn, quantile(f.buckets, 0.99)]));
}

export async function functionsPage() {
  const started = performance.now();
  const [fns, usage, day, p99] = await Promise.all([
    listAll(),
    usageLastHour().catch(() => new Map()),
    usageSeries().catch(() => new Map()),
    p99s().catch(() => new Map()),
  ]);
  const fetched = performance.now();
  const quiet = new Array(24).fill(0);
  fns.sort((a, b) => a.FunctionName.localeCompare(b.FunctionName));
  const body = el('tbody');
  const frag = document.createDocumentFragment();
  for (const f of fns) {
    const u = usage.get(f.FunctionName);
    frag.append(el('tr', { 'data-function': f.FunctionName },
      el('td', {}, el('a', { href: `#/fn/${encodeURIComponent(f.FunctionName)}` }, f.FunctionName)),
      el('td', {}, f.Runtime || ''),
      el('td', { class: 'num' }, `${f.MemorySize} MB`),
      el('td', { class: 'hide-narrow' }, f.LastModified || ''),
      el('td', { class: 'num' }, u ? String(u.Invocations) : '0'),
      el('td', { class: 'hide-narrow' }, sparkline((day.get(f.FunctionName) || { invocations: quiet }).invocations,
        `invocations per hour over 24 hours of ${f.FunctionName}`)),
      el('td', { class: 'num' }, u ? String(u.Errors) : '0'),
      el('td', { class: 'num hide-narrow' }, duration(p99.get(f.FunctionName)))));
  }
  body.append(frag);
  const table = el('table', { id: 'functions' },
    el('caption', { class: 'muted' }, 'Invocations and errors over the last hour; p99 of the duration since the server started.'),
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col' }, 'Function'), el('th', { scope: 'col' }, 'Runtime'), el('th', { scope: 'col', class: 'num' }, 'Memory'),
      el('th', { scope: 'col', class: 'hide-narrow' }, 'Last modified'), el('th', { scope: 'col', class: 'num' }, 'Invocations'),
      el('th', { scope: 'col', class: 'hide-narrow' }, '24 h'),
      el('th', { scope: 'col', class: 'num' }, 'Errors'), el('th', { scope: 'col', class: 'num hide-narrow' }, 'p99'))),
    body);
  const summary = fns.length ? `${fns.length} function${fns.length === 1 ? '' : 's'}` : 'No functions yet: deploy one with owl deploy or the AWS CLI.';
  const count = el('p', { class: 'muted', id: 'count' }, summary);
  // The filter hides the rows whose name lacks its text.
  const filter = el('input', { id: 'filter', type: 'search', placeholder: 'part of a name', spellcheck: 'false', oninput: () => {
    const want = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const tr of body.rows) {
      tr.hidden = want !== '' && !tr.dataset.function.toLowerCase().includes(want);
      if (!tr.hidden) shown++;
    }
    count.textContent = want ? `${shown} of ${summary}` : summary;
  } });
  show(el('h1', {}, 'Functions'),
    el('div', { class: 'row' }, el('label', { for: 'filter' }, 'Filter'), filter),
    count, el('div', { class: 'tablewrap' }, table));
  // For BenchmarkConsoleFunctionsPage: the whole render, and its API calls.
  const main = document.getElementById('main');
  main.dataset.fetchMs = String(Math.round(fetched - started));
  main.dataset.renderMs = String(Math.round(performance.now() - started));
}

