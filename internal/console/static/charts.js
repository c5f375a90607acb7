// charts.js: the metric history (GET /owl/v1/metrics/history) drawn as
// line charts over the last hour, 24 hours or 7 days: invocations with
// errors and throttles, the duration's p50 and p99, concurrency and cold
// starts. Each chart is SVG built element by element (no library, no
// markup from data: the CSP allows neither), its colours from the
// stylesheet's classes.
import { json } from './api.js';
import { el, show, errorText, setStatus } from './dom.js';

const ns = 'http://www.w3.org/2000/svg';

// The ranges a history panel offers: since is the API's duration back
// from now; the server picks the step (the range in 360 steps of whole
// sampling intervals).
export const historyRanges = {
  '1h': { since: '1h', label: 'the last hour', time: { hour: '2-digit', minute: '2-digit' } },
  '24h': { since: '24h', label: 'the last 24 hours', time: { hour: '2-digit', minute: '2-digit' } },
  '7d': { since: '168h', label: 'the last 7 days', time: { weekday: 'short', hour: '2-digit' } },
};

// svg makes an SVG element; string children become text nodes.
function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// niceMax rounds a series' top up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

function fmt(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(2)));
}

const missing = (v) => v === null || v === undefined;

// pathData is a series as a path: M starts a run, L continues it; a gap
// (null: no invocation ran, so no duration) ends the run.
export function pathData(values, x, y) {
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (missing(v)) {
      pen = false;
      return;
    }
    d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  });
  return d;
}

// dots marks the points a line cannot show: those with a gap on both
// sides.
function dots(s, x, y) {
  return s.values.flatMap((v, i) => (missing(v) || !missing(s.values[i - 1]) || !missing(s.values[i + 1]) ? []
    : [svg('circle', { class: `dot series-${s.key}`, cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3 })]));
}

// lineChart draws series ({key, label, values}) over the report's points
// as an SVG with a title, axes, the top value and the range's ends.
export function lineChart(id, title, rep, series, range) {
  const w = 640, h = 170, left = 44, right = 10, top = 10, bottom = 22;
  const n = rep.Points.length;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined))));
  const x = (i) => left + (n > 1 ? (i * (w - left - right)) / (n - 1) : 0);
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  const when = (i) => new Date(Date.parse(rep.Start) + i * rep.StepSeconds * 1000).toLocaleString([], historyRanges[range].time);
  const chart = svg('svg', { id, class: 'chart', viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': `${title} over ${historyRanges[range].label}` },
    svg('title', {}, `${title} over ${historyRanges[range].label}`),
    svg('line', { class: 'axis', x1: left, y1: top, x2: left, y2: h - bottom }),
    svg('line', { class: 'axis', x1: left, y1: h - bottom, x2: w - right, y2: h - bottom }),
    svg('line', { class: 'grid', x1: left, y1: top, x2: w - right, y2: top }),
    svg('text', { class: 'label', x: left - 4, y: top + 4, 'text-anchor': 'end' }, fmt(max)),
    svg('text', { class: 'label', x: left - 4, y: h - bottom, 'text-anchor': 'end' }, '0'),
    svg('text', { class: 'label', x: left, y: h - 6 }, when(0)),
    svg('text', { class: 'label', x: w - right, y: h - 6, 'text-anchor': 'end' }, when(n)));
  for (const s of series) {
    chart.append(svg('path', { class: `series series-${s.key}`, 'data-series': s.key, d: pathData(s.values, x, y) }), ...dots(s, x, y));
  }
  const legend = el('ul', { class: 'legend' }, series.map((s) => el('li', { class: `series-${s.key}` }, s.label)));
  return el('figure', { class: 'chartbox' }, el('figcaption', {}, title), chart, legend);
}

const col = (rep, f) => rep.Points.map(f);

// historyCharts are the report's charts.
function historyCharts(rep, range) {
  return [
    lineChart('chart-invocations', 'Invocations', rep, [
      { key: 'invocations', label: 'invocations', values: col(rep, (p) => p.Invocations) },
      { key: 'errors', label: 'errors', values: col(rep, (p) => p.Errors) },
      { key: 'throttles', label: 'throttles', values: col(rep, (p) => p.Throttles) },
    ], range),
    lineChart('chart-duration', 'Duration (ms)', rep, [
      { key: 'p50', label: 'p50', values: col(rep, (p) => p.DurationP50Ms ?? null) },
      { key: 'p99', label: 'p99', values: col(rep, (p) => p.DurationP99Ms ?? null) },
    ], range),
    lineChart('chart-concurrency', 'Concurrency (average)', rep, [
      { key: 'concurrency', label: 'concurrent executions', values: col(rep, (p) => p.Concurrency) },
    ], range),
    lineChart('chart-cold', 'Cold starts', rep, [
      { key: 'cold', label: 'cold starts', values: col(rep, (p) => p.ColdStarts) },
    ], range),
  ];
}

// historyPanel is a section charting fn's history ('' : every
// function's), over a range the user picks, redrawn every 30 s while
// shown; stop ends the redrawing.
export function historyPanel(fn) {
  const pick = el('select', { id: 'history-range' },
    Object.entries(historyRanges).map(([k, r]) => el('option', { value: k }, r.label)));
  const totals = el('p', { id: 'history-totals', class: 'muted' });
  const charts = el('div', { class: 'charts', id: 'history-charts' });
  const status = el('p', { id: 'history-status', role: 'status' });
  const draw = async () => {
    const range = pick.value;
    const q = new URLSearchParams({ since: historyRanges[range].since });
    if (fn) q.set('function', fn);
    try {
      const rep = await json('GET', `/owl/v1/metrics/history?${q}`);
      const sum = (f) => rep.Points.reduce((a, p) => a + f(p), 0);
      totals.textContent = `${sum((p) => p.Invocations)} invocations, ${sum((p) => p.Errors)} errors, ` +
        `${sum((p) => p.Throttles)} throttles, ${sum((p) => p.ColdStarts)} cold starts over ${historyRanges[range].label} ` +
        `(a point every ${rep.StepSeconds} s; samples every ${rep.IntervalSeconds} s).`;
      charts.replaceChildren(...historyCharts(rep, range));
      charts.dataset.start = rep.Start;
      charts.dataset.step = String(rep.StepSeconds);
      charts.dataset.points = String(rep.Points.length);
      setStatus(status, 'muted', `Updated ${new Date().toLocaleTimeString()}.`);
    } catch (err) {
      setStatus(status, 'error', errorText(err));
    }
  };
  pick.addEventListener('change', draw);
  draw();
  const timer = setInterval(draw, 30e3);
  const section = el('section', { 'aria-labelledby': 'h-history', id: 'history-panel' },
    el('h2', { id: 'h-history' }, 'Metrics history'),
    el('div', { class: 'row' }, el('label', { for: 'history-range' }, 'Over'), pick), totals, charts, status);
  return { section, stop: () => clearInterval(timer) };
}

// dashboardPage charts every function's history together; it answers
// the page's clean-up.
export function dashboardPage() {
  const h = historyPanel('');
  show(el('h1', {}, 'Dashboard'), el('p', { class: 'muted' }, 'Every function together; a function\'s own charts are on its page.'), h.section);
  return h.stop;
}
