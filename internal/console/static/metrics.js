// metrics.js: reading Owl's Prometheus endpoint (GET /metrics, what owl
// top reads): a scrape's per-function series, and what happened between
// two scrapes (rates, errors, duration quantiles, concurrency, cold
// starts), computed as owl top does.
import { call } from './api.js';

// Per-function figures of one scrape, cumulative since the server started.
function emptyFigures() {
  return { invocations: 0, errors: 0, throttles: 0, cold: 0, durationSum: 0, buckets: new Map() };
}

const errorOutcomes = new Set(['function_error', 'timeout', 'init_error']);

// scrape reads /metrics into a Map of function name to its figures, with
// the time of the scrape.
export async function scrape() {
  const text = await (await call('GET', '/metrics')).text();
  const at = performance.now();
  const fns = new Map();
  const get = (fn) => {
    if (!fns.has(fn)) fns.set(fn, emptyFigures());
    return fns.get(fn);
  };
  const re = /^(owl_\w+)\{([^}]*)\} (\S+)$/;
  for (const line of text.split('\n')) {
    const m = line.match(re);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2].replace(/\\(.)/g, '$1')]));
    if (labels.function === undefined) continue;
    const f = get(labels.function);
    const v = Number(m[3]);
    switch (m[1]) {
      case 'owl_invocations_total':
        f.invocations += v;
        if (errorOutcomes.has(labels.outcome)) f.errors += v;
        if (labels.outcome === 'throttle') f.throttles += v;
        break;
      case 'owl_cold_starts_total':
        f.cold += v;
        break;
      case 'owl_invocation_duration_seconds_sum':
        f.durationSum += v;
        break;
      case 'owl_invocation_duration_seconds_bucket': {
        const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
        f.buckets.set(le, (f.buckets.get(le) || 0) + v);
        break;
      }
    }
  }
  return { at, fns };
}

// quantile interpolates q (0..1) in cumulative buckets (le -> count), as
// Prometheus' histogram_quantile does; undefined without observations.
export function quantile(buckets, q) {
  const sorted = [...buckets.entries()].sort((x, y) => x[0] - y[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (!total) return undefined;
  const want = q * total;
  let prevLe = 0, prevCount = 0;
  for (const [le, count] of sorted) {
    if (count >= want) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((want - prevCount) / Math.max(count - prevCount, 1));
    }
    prevLe = le;
    prevCount = count;
  }
  return undefined;
}

// between is what happened to fn from scrape a to scrape b.
export function between(a, b, fn) {
  const x = a.fns.get(fn) || emptyFigures();
  const y = b.fns.get(fn) || emptyFigures();
  const secs = Math.max((b.at - a.at) / 1000, 1e-3);
  const buckets = new Map([...y.buckets].map(([le, c]) => [le, c - (x.buckets.get(le) || 0)]));
  return {
    invocations: y.invocations - x.invocations,
    perSecond: (y.invocations - x.invocations) / secs,
    errors: y.errors - x.errors,
    throttles: y.throttles - x.throttles,
    cold: y.cold - x.cold,
    concurrency: (y.durationSum - x.durationSum) / secs,
    p50: quantile(buckets, 0.5),
    p99: quantile(buckets, 0.99),
  };
}

// duration formats seconds.
export function duration(seconds) {
  if (seconds === undefined) return '–';
  return seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : `${seconds.toFixed(2)} s`;
}
