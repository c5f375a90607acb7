// dom.js: building elements. Data only ever becomes text (text nodes,
// textContent, attribute values), never markup.

// el makes an element: attrs are properties (on* names listeners), the
// children strings (as text) or nodes.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'value') e.value = String(v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// show replaces what <main> shows.
export function show(...nodes) {
  const main = document.getElementById('main');
  main.replaceChildren(...nodes);
}

// errorText is how an error reads: Lambda's error type and its message.
export function errorText(err) {
  if (err && err.type) return `${err.type}: ${err.message}`;
  return String(err && err.message ? err.message : err);
}

// setStatus shows text in a status line, as 'ok', 'error' or plain ('').
export function setStatus(node, kind, text) {
  node.className = kind;
  node.textContent = text;
}

// act runs fn with button disabled; an error it throws is shown in status
// as Lambda's error type and message.
export async function act(button, status, fn) {
  button.disabled = true;
  try {
    await fn();
  } catch (err) {
    setStatus(status, 'error', errorText(err));
  } finally {
    button.disabled = false;
  }
}

// sparkline draws values as a small SVG line (built as elements: the CSP
// allows no inline markup), labelled for screen readers.
export function sparkline(values, label) {
  const ns = 'http://www.w3.org/2000/svg';
  const w = 96, h = 20;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('width', String(w));
  svg.setAttribute('height', String(h));
  svg.setAttribute('class', 'spark');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`).join(' ');
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', points);
  svg.append(line);
  return svg;
}
