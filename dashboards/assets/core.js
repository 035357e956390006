// Switchboard operator dashboard: what every page shares (no page of its own). DOM helpers,
// formatting, API access with the session's CSRF token, the sign-in prompt a 401 brings up,
// the error banner, the live indicator and polling.
//
// Plain browser JavaScript modules, no dependencies, no build step: index.html loads main.js,
// which picks the page from location.pathname; each page lives in a file of its own and reads
// the JSON API under /api/v1 on the same origin.
//
// Safety rule, for every file of the dashboard: API data is only ever put into the page as
// text (textContent, text nodes, attribute values); no file ever parses HTML (the tests in
// dashboards/src/lib.rs refuse the DOM's HTML-parsing calls in any script).

const API = '/api/v1';

// ---------------------------------------------------------------- DOM helpers

export const $ = (selector, root) => (root || document).querySelector(selector);

/** Creates an element; attribute values and children are inserted as text. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Sets text only when it changed (keeps selections and avoids reflows). */
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

export function setAttr(node, name, value) {
  if (value === null || value === undefined) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== String(value)) {
    node.setAttribute(name, String(value));
  }
}

export function setHidden(node, hidden) {
  if (node.hidden !== hidden) node.hidden = hidden;
}

export function setBadge(node, status) {
  const value = status == null ? 'unknown' : String(status);
  setAttr(node, 'data-status', value);
  setText(node, value);
}

/**
 * Keyed reconciliation of `parent`'s children with `items`: existing nodes
 * are reused (so focus, open <details> and text selections survive a
 * refresh), new ones created, stale ones removed, and nodes only moved when
 * their position actually changed.
 */
export function syncChildren(parent, items, keyOf, create, update) {
  const wanted = new Map();
  for (const item of items) wanted.set(keyOf(item), item);
  const existing = new Map();
  for (const child of Array.from(parent.children)) {
    const key = child.getAttribute('data-key');
    if (key === null || !wanted.has(key) || existing.has(key)) child.remove();
    else existing.set(key, child);
  }
  let cursor = parent.firstElementChild;
  for (const [key, item] of wanted) {
    let node = existing.get(key);
    if (!node) {
      node = create(item);
      node.setAttribute('data-key', key);
    }
    update(node, item);
    if (node === cursor) cursor = cursor.nextElementSibling;
    else parent.insertBefore(node, cursor);
  }
}

// ------------------------------------------------------------ formatting

export function parseTime(value) {
  if (value === null || value === undefined || value === '') return NaN;
  return Date.parse(String(value));
}

/** Human text for any JSON value: null → "—", objects → compact JSON. */
export function display(value) {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  try { return JSON.stringify(value); } catch (_) { return String(value); }
}

/** Pretty-printed JSON for <pre> blocks; strings are shown as they are. */
export function pretty(value) {
  if (typeof value === 'string') return value;
  try { return JSON.stringify(value, null, 2); } catch (_) { return String(value); }
}

function pad2(n) { return n < 10 ? '0' + n : String(n); }

/** Compact span: "12s", "4m 05s", "2h 03m", "3d 4h". */
function span(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (d > 0) return d + 'd ' + h + 'h';
  if (h > 0) return h + 'h ' + pad2(m) + 'm';
  if (m > 0) return m + 'm ' + pad2(s) + 's';
  return s + 's';
}

/** Step durations: "340 ms", "2.4 s", "42 s", "4m 05s". */
export function duration(ms) {
  if (!Number.isFinite(ms)) return '';
  if (ms < 0) ms = 0;
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 10000) return (ms / 1000).toFixed(1) + ' s';
  if (ms < 60000) return Math.round(ms / 1000) + ' s';
  return span(ms);
}

/** "12s ago", "4m ago", "3h ago", "5d ago". */
function relative(value, now) {
  const t = parseTime(value);
  if (!Number.isFinite(t)) return display(value);
  const secs = Math.max(0, Math.floor((now - t) / 1000));
  if (secs < 60) return secs + 's ago';
  if (secs < 3600) return Math.floor(secs / 60) + 'm ago';
  if (secs < 86400) return Math.floor(secs / 3600) + 'h ago';
  return Math.floor(secs / 86400) + 'd ago';
}

/** "in 4m 05s" or "overdue by 12s". */
function countdown(value, now) {
  const t = parseTime(value);
  if (!Number.isFinite(t)) return '';
  const diff = t - now;
  return diff >= 0 ? 'in ' + span(diff) : 'overdue by ' + span(-diff);
}

/** Local date and time; only the time when it is today. */
export function absolute(value) {
  const t = parseTime(value);
  if (!Number.isFinite(t)) return display(value);
  const date = new Date(t);
  const today = new Date();
  if (date.toDateString() === today.toDateString()) {
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  return date.toLocaleString();
}

/** Fills a <time> element: local text, ISO title and datetime attribute. */
export function setTime(node, value) {
  setText(node, value ? absolute(value) : '—');
  setAttr(node, 'datetime', value || null);
  setAttr(node, 'title', value || null);
}

// Elements whose text depends on the clock carry their timestamp in a data
// attribute; one ticker keeps all of them current between API refreshes.
export function tickLive() {
  const now = Date.now();
  for (const node of document.querySelectorAll('[data-rel-ts]')) {
    setText(node, relative(node.getAttribute('data-rel-ts'), now));
  }
  for (const node of document.querySelectorAll('[data-deadline]')) {
    const deadline = node.getAttribute('data-deadline');
    setText(node, countdown(deadline, now));
    const overdue = parseTime(deadline) < now;
    if (node.classList.contains('overdue') !== overdue) node.classList.toggle('overdue', overdue);
  }
  for (const node of document.querySelectorAll('[data-since]')) {
    const since = parseTime(node.getAttribute('data-since'));
    setText(node, Number.isFinite(since) ? duration(now - since) + ' so far' : '');
  }
}

/** One run's page (the runs list and the backtest's changed decisions link to it). */
export function runHref(id) {
  return '/runs/' + encodeURIComponent(String(id));
}

// --------------------------------------------------------------- API access

class ApiError extends Error {
  constructor(code, message, details, status) {
    super(message);
    this.code = code;
    this.details = details;
    this.status = status;
  }
}

// The signed-in session: who it is and the CSRF token actions carry (see startSession in
// session.js).
export const session = { csrfToken: null, csrfHeader: 'X-CSRF-Token' };

/** fetch + JSON; non-2xx answers become ApiError from the API's error shape. */
export async function api(path, options) {
  const opts = Object.assign({ cache: 'no-store', credentials: 'same-origin' }, options || {});
  opts.headers = Object.assign({ Accept: 'application/json' }, (options && options.headers) || {});
  const method = (opts.method || 'GET').toUpperCase();
  if (method !== 'GET' && method !== 'HEAD' && session.csrfToken) {
    opts.headers[session.csrfHeader] = session.csrfToken;
  }
  let response;
  try {
    response = await fetch(API + path, opts);
  } catch (err) {
    throw new ApiError('network_error', 'Could not reach the Switchboard API (' + (err && err.message ? err.message : 'network error') + ')', null, 0);
  }
  let text = '';
  try { text = await response.text(); } catch (_) { text = ''; }
  let body = null;
  let parsed = false;
  if (text) {
    try { body = JSON.parse(text); parsed = true; } catch (_) { parsed = false; }
  }
  if (response.status === 401 && path !== '/sessions') showSignIn();
  if (!response.ok) {
    const e = parsed && body && typeof body === 'object' ? body.error : null;
    if (e && typeof e === 'object') {
      throw new ApiError(
        e.code != null ? String(e.code) : 'http_' + response.status,
        e.message != null ? String(e.message) : 'Request failed with HTTP ' + response.status,
        e.details === undefined ? null : e.details,
        response.status);
    }
    throw new ApiError('http_' + response.status,
      ('Request failed: HTTP ' + response.status + ' ' + (response.statusText || '')).trim(),
      text ? text.slice(0, 300) : null, response.status);
  }
  if (text && !parsed) {
    throw new ApiError('invalid_response', 'The API answered with something that is not JSON', text.slice(0, 300), response.status);
  }
  return body;
}

// Every page needs a session: a 401 from the API hides the page and shows the sign-in form
// (session.js signs in and out).
let signInShown = false;

function showSignIn() {
  if (signInShown) return;
  signInShown = true;
  for (const view of document.querySelectorAll('.view')) setHidden(view, true);
  setHidden($('#session'), true);
  setHidden($('#sign-in-view'), false);
  $('#sign-in-key').focus();
}

// ------------------------------------------------------------- error banner

// Errors are kept per source: a failed poll is cleared by the next good
// poll, while a failed action (cancel) stays until dismissed or retried.
const errors = new Map();

export function setError(source, err) {
  errors.set(source, err);
  renderErrors();
}

export function clearError(source) {
  if (errors.delete(source)) renderErrors();
}

/** Dismisses every error (the banner's close button). */
export function clearErrors() {
  errors.clear();
  renderErrors();
}

function renderErrors() {
  const banner = $('#error-banner');
  if (!banner) return;
  let latest = null;
  for (const err of errors.values()) latest = err;
  if (!latest) {
    setHidden(banner, true);
    setAttr(banner, 'data-code', null);
    return;
  }
  const code = latest.code || 'error';
  let text = (latest.message || 'Something went wrong') + ' (' + code + ')';
  if (latest.details !== null && latest.details !== undefined && latest.details !== '') {
    let details = display(latest.details);
    if (details.length > 300) details = details.slice(0, 300) + '…';
    text += ' — ' + details;
  }
  setText($('#error-text'), text);
  setAttr(banner, 'data-code', code);
  setHidden(banner, false);
}

export function setLive(state, text) {
  const node = $('#live-indicator');
  if (!node) return;
  setAttr(node, 'data-state', state);
  setText(node, text);
}

// ---------------------------------------------------------------- polling

/**
 * Runs `task` now and then `intervalMs` after each completion (never two at
 * once). Skips work while the tab is hidden and catches up when it shows.
 */
export function poller(task, intervalMs) {
  let timer = null;
  let running = false;
  let again = false;
  let stopped = false;

  async function run() {
    if (stopped) return;
    if (running) { again = true; return; }
    clearTimeout(timer);
    timer = null;
    running = true;
    try {
      if (!document.hidden) await task();
    } catch (err) {
      console.error(err);
    } finally {
      running = false;
    }
    if (stopped) return;
    if (again) { again = false; run(); return; }
    timer = setTimeout(run, intervalMs);
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) run();
  });

  return {
    run,
    start() { stopped = false; run(); },
    stop() { stopped = true; again = false; clearTimeout(timer); timer = null; },
  };
}

/**
 * Server-sent run changes (`GET /api/v1/events?query`): each change asks
 * `poll` to refresh now (coalesced), so pages follow runs as they move
 * instead of waiting for the next poll. EventSource reconnects by itself,
 * resuming after the last event id; polling stays as the fallback.
 */
export function followEvents(query, poll) {
  if (typeof EventSource !== 'function') return null;
  const source = new EventSource(API + '/events' + (query ? '?' + query : ''));
  let pending = null;
  const nudge = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; poll.run(); }, 150);
  };
  source.addEventListener('run', nudge);
  source.addEventListener('reset', nudge);
  return source;
}
