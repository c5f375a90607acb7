// activity.js: what happened to a function: live metrics (GET /metrics),
// its usage over 24 hours
// (GET /owl/v1/usage), its asynchronous events with replay (GET
// /owl/v1/events, POST /owl/v1/events/replay) and its schedules (GET
// /owl/v1/triggers). A panel whose operation this node does not offer
// says so in place.
import { json } from './api.js';
import { el, errorText, setStatus, act, sparkline } from './dom.js';
import { usageSeries, ranges } from './functions.js';
import { scrape, between, duration } from './metrics.js';

// panel is a section with a heading; body is built by fill, and an
// error filling it is shown in the section.
async function panel(id, title, fill) {
  const section = el('section', { 'aria-labelledby': `h-${id}`, id: `${id}-panel` }, el('h2', { id: `h-${id}` }, title));
  try {
    section.append(...await fill());
  } catch (err) {
    section.append(el('p', { class: 'error' }, errorText(err)));
  }
  return section;
}

// usagePanel shows the function's billed usage over a range the user
// picks (24 hours by hour, 7 or 30 days by day).
export function usagePanel(name) {
  return panel('usage', 'Usage', async () => {
    const pick = el('select', { id: 'usage-range' },
      Object.entries(ranges).map(([k, r]) => el('option', { value: k }, r.label)));
    const body = el('div', {});
    const draw = async () => {
      const r = ranges[pick.value];
      try {
        const u = (await usageSeries(name, pick.value)).get(name) || { invocations: new Array(r.n).fill(0), gbs: 0, billedMs: 0, errors: 0 };
        const total = u.invocations.reduce((a, b) => a + b, 0);
        body.replaceChildren(
          el('p', {}, sparkline(u.invocations, `invocations of ${name} over ${r.label}`)),
          el('dl', { class: 'facts', id: 'usage-facts' },
            el('dt', {}, 'Invocations'), el('dd', {}, String(total)),
            el('dt', {}, 'Errors'), el('dd', {}, String(u.errors)),
            el('dt', {}, 'Billed'), el('dd', {}, `${u.billedMs} ms`),
            el('dt', {}, 'Compute'), el('dd', {}, `${u.gbs.toFixed(4)} GB-s`)));
      } catch (err) {
        body.replaceChildren(el('p', { class: 'error' }, errorText(err)));
      }
    };
    pick.addEventListener('change', draw);
    await draw();
    return [el('div', { class: 'row' }, el('label', { for: 'usage-range' }, 'Over'), pick), body];
  });
}

// localInput is a Date as a datetime-local input's value.
function localInput(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function eventsPanel(name) {
  return panel('events', 'Events', async () => {
    const list = await json('GET', `/owl/v1/events?${new URLSearchParams({ function: name, limit: '20' })}`);
    const rows = (list.Events || []).map((e) => el('tr', {},
      el('td', {}, new Date(e.time).toLocaleString()),
      el('td', {}, e.id),
      el('td', {}, e.type),
      el('td', {}, el('code', {}, e.data === undefined ? '' : JSON.stringify(e.data).slice(0, 200))),
      el('td', {}, e.owlreplayof || '')));
    const since = el('input', { id: 'replay-since', type: 'datetime-local', value: localInput(new Date(Date.now() - 3600e3)) });
    const status = el('p', { id: 'replay-status', role: 'status' });
    const replay = el('button', { type: 'submit', class: 'secondary', id: 'replay' }, 'Replay');
    const form = el('form', { class: 'row', onsubmit: (ev) => {
      ev.preventDefault();
      act(replay, status, async () => {
        const out = await json('POST', '/owl/v1/events/replay', { body: { Function: name, Since: new Date(since.value).toISOString() } });
        setStatus(status, 'ok', `Replayed ${out.Count} event${out.Count === 1 ? '' : 's'}.`);
      });
    } }, el('label', { for: 'replay-since' }, 'Replay the events since'), since, replay);
    return [
      await asyncConfig(name),
      el('div', { class: 'tablewrap' }, el('table', { id: 'events' },
        el('thead', {}, el('tr', {}, ...['Time', 'Id', 'Type', 'Data', 'Replay of'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No asynchronous events.'))))),
      form, status,
    ];
  });
}

// asyncConfig shows how the function's asynchronous invocations are
// retried and where their outcomes go (its event invoke config; Lambda's
// defaults without one).
async function asyncConfig(name) {
  let c;
  try {
    c = await json('GET', `/2019-09-25/functions/${encodeURIComponent(name)}/event-invoke-config`);
  } catch (err) {
    if (err.type !== 'ResourceNotFoundException') throw err;
    return el('p', { class: 'muted', id: 'async-config' }, 'Asynchronous invocations: Lambda\'s defaults (2 retries, events kept 6 hours, no destinations).');
  }
  const dest = (c.DestinationConfig || {});
  const to = (d) => (d && d.Destination) || 'none';
  return el('dl', { class: 'facts', id: 'async-config' },
    el('dt', {}, 'Retries'), el('dd', {}, String(c.MaximumRetryAttempts ?? 2)),
    el('dt', {}, 'Events kept'), el('dd', {}, `${c.MaximumEventAgeInSeconds ?? 21600} s`),
    el('dt', {}, 'On success'), el('dd', {}, to(dest.OnSuccess)),
    el('dt', {}, 'On failure'), el('dd', {}, to(dest.OnFailure)));
}

export function triggersPanel(name) {
  return panel('triggers', 'Schedules', async () => {
    const list = await json('GET', '/owl/v1/triggers');
    const mine = (list.Triggers || []).filter((t) => t.Function.split(':')[0] === name || t.Function.endsWith(`:function:${name}`) || t.Function.includes(`:function:${name}:`));
    if (!mine.length) return [el('p', { class: 'muted', id: 'triggers-none' }, 'No schedules: owl trigger add makes one.')];
    return [el('div', { class: 'tablewrap' }, el('table', { id: 'triggers' },
      el('thead', {}, el('tr', {}, ...['Name', 'Schedule', 'State', 'Next firing'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, mine.map((t) => el('tr', {},
        el('td', {}, t.Name), el('td', {}, `${t.Schedule}${t.Timezone ? ` (${t.Timezone})` : ''}`),
        el('td', {}, t.State + (t.StateReason ? `: ${t.StateReason}` : '')),
        el('td', {}, t.NextFiring ? new Date(t.NextFiring).toLocaleString() : ''))))))];
  });
}

// livePanel shows what happened to the function between the last two
// scrapes of /metrics, every 2 s while the page is open (owl top's
// figures), with a sparkline of its invocations per second. stop ends it.
export function livePanel(name) {
  const figures = el('dl', { class: 'facts', id: 'live-facts' }, el('dt', {}, 'Measuring'), el('dd', {}, '…'));
  const chart = el('p', { id: 'live-chart' });
  const status = el('p', { id: 'live-status', role: 'status' });
  const history = [];
  let last = null;
  let timer = null;
  const tick = async () => {
    try {
      const now = await scrape();
      if (last) {
        const d = between(last, now, name);
        history.push(d.perSecond);
        if (history.length > 60) history.shift();
        const dd = (id, text) => el('dd', { id: `live-${id}` }, text);
        figures.replaceChildren(
          el('dt', {}, 'Invocations/s'), dd('rate', d.perSecond.toFixed(2)),
          el('dt', {}, 'Invocations'), dd('invocations', String(d.invocations)),
          el('dt', {}, 'Errors'), dd('errors', String(d.errors)),
          el('dt', {}, 'Throttles'), dd('throttles', String(d.throttles)),
          el('dt', {}, 'Cold starts'), dd('cold', String(d.cold)),
          el('dt', {}, 'Duration p50 / p99'), dd('p', `${duration(d.p50)} / ${duration(d.p99)}`),
          el('dt', {}, 'Concurrency'), dd('concurrency', d.concurrency.toFixed(2)));
        chart.replaceChildren(sparkline(history, `invocations per second of ${name}, the last ${history.length} intervals of 2 s`));
      }
      last = now;
      setStatus(status, 'muted', `Updated ${new Date().toLocaleTimeString()}, every 2 s.`);
    } catch (err) {
      setStatus(status, 'error', errorText(err));
    }
  };
  tick();
  timer = setInterval(tick, 2000);
  const section = el('section', { 'aria-labelledby': 'h-live', id: 'live-panel' },
    el('h2', { id: 'h-live' }, 'Live metrics (the last 2 s)'), chart, figures, status);
  return { section, stop: () => clearInterval(timer) };
}
