// nodes.js: the nodes page (#/nodes, #/nodes/NAME with NAME's
// environments shown): every node of the cluster as GET /owl/v1/nodes
// lists it (a node outside a cluster lists itself), refreshed every few
// seconds, with a Drain / Undrain button on each node that runs
// environments (POST /owl/v1/nodes/{name}/drain, what `owl nodes drain`
// calls). Rows are kept across refreshes and only their text changes, so
// a focused button keeps its focus and a confirmation in progress stays.
import { json } from './api.js';
import { el, show, errorText, setStatus } from './dom.js';

// refreshMs is how often the list is fetched again.
const refreshMs = 3000;

// states are the environment states a node counts, in the order shown.
const states = ['starting', 'busy', 'idle', 'frozen', 'provisioned'];

// runsEnvironments: a node of role api runs none (and is not drained).
const runsEnvironments = (n) => n.role !== 'api';

// healthText is a node's health as the CLI prints it: the failing checks
// of an unhealthy node in parentheses.
function healthText(n) {
  const problems = n.problems || [];
  return problems.length ? `${n.health} (${problems.join(', ')})` : n.health;
}

// healthClass is the badge's look: ok, draining (a choice), or bad.
function healthClass(n) {
  if (n.health === 'ok') return 'badge health-ok';
  if (n.health === 'draining') return 'badge health-draining';
  return 'badge health-bad';
}

// envCounts sums a node's environments over its function versions.
function envCounts(n) {
  let warm = 0, frozen = 0;
  for (const by of Object.values(n.environments || {})) {
    warm += (by.idle || 0) + (by.busy || 0);
    frozen += by.frozen || 0;
  }
  return { warm, frozen };
}

// lastSeen is how long ago the answering node heard from a node.
function lastSeen(ms) {
  if (typeof ms !== 'number') return '';
  return ms < 1000 ? 'just now' : `${(ms / 1000).toFixed(1)} s ago`;
}

// nodeHash is the address of the page with name's environments shown.
function nodeHash(name) {
  return `#/nodes/${encodeURIComponent(name)}`;
}

// nodesPage shows the nodes, selected's environments below them; it
// answers the page's clean-up (the refresh stops).
export function nodesPage(selected) {
  const body = el('tbody');
  const rows = new Map(); // name → the row's parts
  // Neither the status line nor the environments are live regions: a
  // screen reader would read them out every refresh.
  const status = el('p', { id: 'nodes-status', class: 'muted' });
  const count = el('p', { id: 'nodes-count', class: 'muted' });
  const envs = el('section', { id: 'node-envs', 'aria-labelledby': 'h-envs' });
  let envsShown = null; // what envs was drawn from: redrawn only when it changes
  let stopped = false;

  const refresh = async () => {
    try {
      const list = await json('GET', '/owl/v1/nodes');
      if (stopped) return;
      const nodes = (list.nodes || []).slice().sort((a, b) => a.name.localeCompare(b.name));
      render(nodes);
      setStatus(status, 'muted', `Updated ${new Date().toLocaleTimeString()}; refreshed every ${refreshMs / 1000} s.`);
    } catch (err) {
      if (!stopped) setStatus(status, 'error', `Listing the nodes failed: ${errorText(err)}`);
    }
  };

  const render = (nodes) => {
    const seen = new Set();
    nodes.forEach((n, i) => {
      seen.add(n.name);
      let r = rows.get(n.name);
      if (!r) {
        r = nodeRow(n.name, refresh);
        rows.set(n.name, r);
      }
      r.update(n);
      // In name order; a row already in place is not moved (moving it
      // would take the focus from its button).
      if (body.children[i] !== r.tr) body.insertBefore(r.tr, body.children[i] || null);
    });
    for (const [name, r] of rows) {
      if (!seen.has(name)) {
        r.tr.remove();
        rows.delete(name);
      }
    }
    count.textContent = `${nodes.length} node${nodes.length === 1 ? '' : 's'}`;
    const node = nodes.find((n) => n.name === selected);
    const drawn = JSON.stringify([node && node.role, node && node.environments]);
    if (drawn !== envsShown) {
      envsShown = drawn;
      showEnvironments(envs, selected, node);
    }
  };

  const table = el('table', { id: 'nodes' },
    el('caption', { class: 'muted' }, 'Warm: environments started and not frozen (idle or running an invocation). Select a node to see its environments by function version.'),
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col' }, 'Node'), el('th', { scope: 'col' }, 'Role'), el('th', { scope: 'col', class: 'hide-narrow' }, 'Version'),
      el('th', { scope: 'col' }, 'Health'), el('th', { scope: 'col', class: 'num' }, 'Memory free/total'),
      el('th', { scope: 'col', class: 'num' }, 'Running/limit'), el('th', { scope: 'col', class: 'hide-narrow' }, 'Runtimes'),
      el('th', { scope: 'col', class: 'num' }, 'Warm/frozen'), el('th', { scope: 'col', class: 'hide-narrow' }, 'Last seen'),
      el('th', { scope: 'col' }, el('span', { class: 'sr-only' }, 'Actions')))),
    body);
  show(el('h1', {}, 'Nodes'),
    el('p', { class: 'muted' }, 'The nodes of this Owl cluster, as ', el('code', {}, 'owl nodes'), ' lists them. Draining a node stops new placements on it; what runs there finishes.'),
    count, el('div', { class: 'tablewrap' }, table), status, envs);
  refresh();
  const timer = setInterval(refresh, refreshMs);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

// nodeRow is one node's row: its cells, updated by update(n), and its
// drain control, which asks for a confirmation, calls the API and shows
// the API's error inline. It is longer than 80 lines because the row's
// state (the node, a confirmation, a call under way) and the handlers
// that change it share its closure.
function nodeRow(name, refresh) {
  const cell = (cls) => el('td', { class: cls });
  const c = {
    role: cell(), version: cell('hide-narrow'), memory: cell('num'), running: cell('num'),
    runtimes: cell('hide-narrow'), envs: cell('num'), seen: cell('hide-narrow'),
  };
  const health = el('span', {});
  const actions = el('td', { class: 'actions' });
  const error = el('p', { class: 'error', role: 'alert' });
  const tr = el('tr', { 'data-node': name },
    el('th', { scope: 'row' }, el('a', { href: nodeHash(name) }, name)),
    c.role, c.version, el('td', {}, health), c.memory, c.running, c.runtimes, c.envs, c.seen, actions);
  let node = null;
  let confirming = false;
  let busy = false;
  let shownAs = ''; // the control's state drawn last: redrawn only when it changes

  const drawControl = () => {
    const want = node && runsEnvironments(node) ? `${node.draining}/${confirming}/${busy}` : 'none';
    if (want === shownAs) return;
    const hadFocus = actions.contains(document.activeElement);
    shownAs = want;
    if (want === 'none') {
      actions.replaceChildren(error);
      return;
    }
    const drain = !node.draining;
    const verb = drain ? 'Drain' : 'Undrain';
    let focus;
    if (confirming) {
      const yes = el('button', { type: 'button', class: 'confirm', disabled: busy, onclick: () => send(drain) },
        `${verb} ${name}`);
      const no = el('button', { type: 'button', class: 'secondary cancel', disabled: busy, onclick: () => {
        confirming = false;
        drawControl();
      } }, 'Cancel');
      const ask = drain ? `Drain ${name}? No new invocations are placed on it; what runs there finishes.` : `Put ${name} back in service?`;
      actions.replaceChildren(el('p', { class: 'confirm-text' }, ask), el('div', { class: 'row' }, yes, no), error);
      focus = yes;
    } else {
      const b = el('button', { type: 'button', class: drain ? 'drain' : 'drain secondary', onclick: () => {
        error.textContent = '';
        confirming = true;
        drawControl();
      } }, verb);
      b.setAttribute('aria-label', `${verb} ${name}`);
      actions.replaceChildren(b, error);
      focus = b;
    }
    if (hadFocus) focus.focus();
  };

  const send = async (drain) => {
    busy = true;
    drawControl();
    try {
      const n = await json('POST', `/owl/v1/nodes/${encodeURIComponent(name)}/drain`, { body: { drain } });
      error.textContent = '';
      confirming = false;
      busy = false;
      update(n);
      refresh();
    } catch (err) {
      error.textContent = `${drain ? 'Draining' : 'Undraining'} ${name} failed: ${errorText(err)}`;
      confirming = false;
      busy = false;
      drawControl();
    }
  };

  const update = (n) => {
    node = n;
    const api = !runsEnvironments(n);
    c.role.textContent = n.role;
    c.version.textContent = n.version;
    health.className = healthClass(n);
    health.textContent = healthText(n);
    c.memory.textContent = api ? '-' : `${n.memory_free_mb}/${n.memory_mb} MB`;
    c.running.textContent = api ? '-' : `${n.inflight}/${n.concurrency_limit}`;
    c.runtimes.textContent = (n.runtimes || []).join(', ') || '-';
    const e = envCounts(n);
    c.envs.textContent = api ? '-' : `${e.warm}/${e.frozen}`;
    c.seen.textContent = lastSeen(n.last_seen_ms);
    tr.dataset.health = n.health;
    drawControl();
  };
  return { tr, update };
}

// showEnvironments fills section with node's environments per function
// version (name selected, node undefined when no node has that name).
function showEnvironments(section, selected, node) {
  if (!selected) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const h = el('h2', { id: 'h-envs' }, `Environments on ${selected}`);
  if (!node) {
    section.replaceChildren(h, el('p', { class: 'error' }, `No node named ${selected} is listed.`));
    return;
  }
  const keys = Object.keys(node.environments || {}).sort();
  if (!keys.length) {
    section.replaceChildren(h, el('p', { class: 'muted', id: 'node-envs-none' },
      runsEnvironments(node) ? 'No environments on this node.' : 'This node runs no environments (role api).'));
    return;
  }
  const body = el('tbody');
  for (const key of keys) {
    const by = node.environments[key];
    const i = key.lastIndexOf(':');
    body.append(el('tr', { 'data-version': key },
      el('th', { scope: 'row' }, el('a', { href: `#/fn/${encodeURIComponent(key.slice(0, i))}` }, key.slice(0, i))),
      el('td', {}, key.slice(i + 1)),
      states.map((s) => el('td', { class: 'num', 'data-state': s }, String(by[s] || 0)))));
  }
  section.replaceChildren(h, el('div', { class: 'tablewrap' }, el('table', { id: 'node-envs-table' },
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Function'), el('th', { scope: 'col' }, 'Version'),
      states.map((s) => el('th', { scope: 'col', class: 'num' }, s[0].toUpperCase() + s.slice(1))))),
    body)));
}
