// Switchboard operator dashboard (v0).
//
// Plain browser JavaScript, no dependencies, no build step. The same HTML
// shell serves "/" (runs list) and "/runs/{id}" (one run's timeline); this
// script picks the view from location.pathname and reads the JSON API under
// /api/v1 on the same origin.
//
// Safety rule: API data is only ever put into the page as text (textContent,
// text nodes, attribute values); this file never parses HTML.
(function () {
  'use strict';

  const API = '/api/v1';
  const RUNS_PAGE_SIZE = 50;
  const RUNS_REFRESH_MS = 2000;
  const RUN_REFRESH_MS = 1000;
  const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
  const LEAD_CALL_STEPS = [
    'intake', 'build_context', 'route', 'place_call',
    'await_call', 'analyze', 'score', 'follow_up',
  ];

  // ---------------------------------------------------------------- DOM helpers

  const $ = (selector, root) => (root || document).querySelector(selector);

  /** Creates an element; attribute values and children are inserted as text. */
  function el(tag, attrs, ...children) {
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
  function setText(node, text) {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function setAttr(node, name, value) {
    if (value === null || value === undefined) {
      if (node.hasAttribute(name)) node.removeAttribute(name);
    } else if (node.getAttribute(name) !== String(value)) {
      node.setAttribute(name, String(value));
    }
  }

  function setHidden(node, hidden) {
    if (node.hidden !== hidden) node.hidden = hidden;
  }

  function setBadge(node, status) {
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
  function syncChildren(parent, items, keyOf, create, update) {
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

  function parseTime(value) {
    if (value === null || value === undefined || value === '') return NaN;
    return Date.parse(String(value));
  }

  /** Human text for any JSON value: null → "—", objects → compact JSON. */
  function display(value) {
    if (value === null || value === undefined || value === '') return '—';
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    try { return JSON.stringify(value); } catch (_) { return String(value); }
  }

  /** Pretty-printed JSON for <pre> blocks; strings are shown as they are. */
  function pretty(value) {
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
  function duration(ms) {
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
  function absolute(value) {
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
  function setTime(node, value) {
    setText(node, value ? absolute(value) : '—');
    setAttr(node, 'datetime', value || null);
    setAttr(node, 'title', value || null);
  }

  // Elements whose text depends on the clock carry their timestamp in a data
  // attribute; one ticker keeps all of them current between API refreshes.
  function tickLive() {
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

  // --------------------------------------------------------------- API access

  class ApiError extends Error {
    constructor(code, message, details, status) {
      super(message);
      this.code = code;
      this.details = details;
      this.status = status;
    }
  }

  /** fetch + JSON; non-2xx answers become ApiError from the API's error shape. */
  // The signed-in session: who it is and the CSRF token actions carry (see startSession).
  const session = { csrfToken: null, csrfHeader: 'X-CSRF-Token' };

  async function api(path, options) {
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

  // ------------------------------------------------------------- error banner

  // Errors are kept per source: a failed poll is cleared by the next good
  // poll, while a failed action (cancel) stays until dismissed or retried.
  const errors = new Map();

  function setError(source, err) {
    errors.set(source, err);
    renderErrors();
  }

  function clearError(source) {
    if (errors.delete(source)) renderErrors();
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

  function setLive(state, text) {
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
  function poller(task, intervalMs) {
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
  function followEvents(query, poll) {
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

  // ---------------------------------------------------------------- runs list

  // A phone number shown in a list: its last two digits (`+…71`), as the logs mask it.
  function maskPhone(phone) {
    const text = phone == null ? '' : String(phone);
    return text.length > 2 ? '+…' + text.slice(-2) : text;
  }

  function runHref(id) {
    return '/runs/' + encodeURIComponent(String(id));
  }

  function initRunsView() {
    setHidden($('#runs-view'), false);
    document.title = 'Runs · Switchboard';

    const businessInput = $('#filter-business');
    const statusSelect = $('#filter-status');
    // Every filter: its query parameter and its control. Text fields apply as you type, the
    // others on change; all of them live in the page's URL so a view can be shared.
    const FILTERS = [
      { param: 'business', node: businessInput, typed: true },
      { param: 'status', node: statusSelect },
      { param: 'step', node: $('#filter-step') },
      { param: 'outcome', node: $('#filter-outcome'), typed: true },
      { param: 'q', node: $('#filter-q'), typed: true },
      { param: 'from', node: $('#filter-from') },
      { param: 'to', node: $('#filter-to') },
    ];
    const loadMoreButton = $('#load-more');
    const tbody = $('#runs-table tbody');

    const params = new URLSearchParams(location.search);
    for (const f of FILTERS) {
      const value = params.get(f.param) || '';
      if (f.node.tagName === 'SELECT') {
        f.node.value = Array.from(f.node.options).some((o) => o.value === value) ? value : '';
      } else {
        f.node.value = value;
      }
    }

    const state = {
      generation: 0, // bumped on every filter change; stale answers are dropped
      rows: [],
      cursor: null,
      extraPages: false,
      loaded: false,
      loadingMore: false,
    };

    function filters() {
      const out = {};
      for (const f of FILTERS) {
        const value = f.node.value.trim();
        if (value) out[f.param] = value;
      }
      return out;
    }

    // A day picked in the page is local: from its midnight, to the next day's midnight.
    function dayBound(day, plusDays) {
      const t = new Date(day + 'T00:00:00');
      if (isNaN(t.getTime())) return null;
      t.setDate(t.getDate() + plusDays);
      return t.toISOString();
    }

    function query(cursor) {
      const f = filters();
      const q = new URLSearchParams();
      for (const [param, value] of Object.entries(f)) {
        if (param === 'from' || param === 'to') {
          const bound = dayBound(value, param === 'to' ? 1 : 0);
          if (bound) q.set(param, bound);
        } else {
          q.set(param, value);
        }
      }
      q.set('limit', String(RUNS_PAGE_SIZE));
      if (cursor) q.set('cursor', cursor);
      return '/runs?' + q.toString();
    }

    function uniqueRuns(runs) {
      const seen = new Set();
      const out = [];
      for (const run of Array.isArray(runs) ? runs : []) {
        if (!run || run.id === null || run.id === undefined) continue;
        const id = String(run.id);
        if (seen.has(id)) continue;
        seen.add(id);
        out.push(run);
      }
      return out;
    }

    // The refresh re-reads only the first page. When more pages were loaded,
    // rows already shown below the first page are kept (as last loaded) so
    // the list never shrinks or jumps under the operator; the cursor stays
    // the one from the last "Load more".
    // Runs per status for the business filter; a chip filters the list by its status.
    async function refreshCounts() {
      const f = filters();
      const q = f.business ? '?business=' + encodeURIComponent(f.business) : '';
      let data;
      try {
        data = await api('/runs/counts' + q);
      } catch (_) {
        return; // the list's own refresh reports connection problems
      }
      const counts = data && data.counts && typeof data.counts === 'object' ? data.counts : {};
      const items = Object.keys(counts).map((status) => ({ status, n: counts[status] }));
      syncChildren($('#status-counts'), items, (i) => i.status,
        (i) => {
          const button = el('button', { type: 'button', class: 'count-chip' },
            el('span', { class: 'status-badge' }), el('span', { class: 'count' }));
          button.addEventListener('click', () => {
            statusSelect.value = statusSelect.value === i.status ? '' : i.status;
            statusSelect.dispatchEvent(new Event('change', { bubbles: true }));
          });
          return el('li', {}, button);
        },
        (li, i) => {
          const button = li.firstChild;
          setBadge(button.firstChild, i.status);
          setText(button.lastChild, String(i.n));
          setAttr(button, 'aria-pressed', statusSelect.value === i.status ? 'true' : 'false');
        });
    }

    async function refresh() {
      refreshCounts();
      const generation = state.generation;
      let data;
      try {
        data = await api(query(null));
      } catch (err) {
        if (generation !== state.generation) return;
        setError('poll', err);
        setLive('error', 'Connection problem');
        return;
      }
      if (generation !== state.generation) return;
      clearError('poll');
      setLive('live', 'Live');
      const first = uniqueRuns(data && data.runs);
      if (state.extraPages) {
        const ids = new Set(first.map((r) => String(r.id)));
        state.rows = first.concat(state.rows.filter((r) => !ids.has(String(r.id))));
      } else {
        state.rows = first;
        state.cursor = (data && data.next_cursor) || null;
      }
      state.loaded = true;
      render();
    }

    async function loadMore() {
      if (!state.cursor || state.loadingMore) return;
      const generation = state.generation;
      state.loadingMore = true;
      loadMoreButton.disabled = true;
      setText(loadMoreButton, 'Loading…');
      try {
        const data = await api(query(state.cursor));
        if (generation !== state.generation) return;
        clearError('action');
        const ids = new Set(state.rows.map((r) => String(r.id)));
        const page = uniqueRuns(data && data.runs).filter((r) => !ids.has(String(r.id)));
        state.rows = state.rows.concat(page);
        state.cursor = (data && data.next_cursor) || null;
        state.extraPages = true;
        render();
      } catch (err) {
        if (generation === state.generation) setError('action', err);
      } finally {
        state.loadingMore = false;
        loadMoreButton.disabled = false;
        setText(loadMoreButton, 'Load more');
      }
    }

    function createRow(run) {
      const link = el('a', { class: 'run-link' });
      const badge = el('span', { class: 'status-badge' });
      const step = el('span', { class: 'step-name' });
      const waitHint = el('span', { class: 'wait-hint', hidden: true });
      const waitKind = el('span', { class: 'wait-kind' });
      const waitDue = el('span', { class: 'countdown' });
      waitHint.append(waitKind, ' · ', waitDue);
      const outcome = el('span', { class: 'outcome' });
      const business = el('span');
      // Who the run is for: the lead's name and masked phone, linking to the lead on the run page.
      const leadName = el('span', { class: 'lead-name' });
      const leadPhone = el('span', { class: 'lead-phone' });
      const lead = el('a', { class: 'lead-link' }, leadName, ' ', leadPhone);
      const updated = el('time', { class: 'rel-time' });
      const tr = el('tr', { class: 'run-row' },
        el('td', { class: 'col-id', 'data-label': 'Run' }, link),
        el('td', { class: 'col-status', 'data-label': 'Status' }, badge),
        el('td', { class: 'col-step', 'data-label': 'Current step' }, step, waitHint),
        el('td', { class: 'col-outcome', 'data-label': 'Outcome' }, outcome),
        el('td', { class: 'col-business', 'data-label': 'Business' }, business),
        el('td', { class: 'col-lead', 'data-label': 'Lead' }, lead),
        el('td', { class: 'col-updated', 'data-label': 'Updated' }, updated));
      rowRefs.set(tr, { link, badge, step, waitHint, waitKind, waitDue, outcome, business, lead, leadName, leadPhone, updated });
      return tr;
    }

    function updateRow(tr, run) {
      const r = rowRefs.get(tr);
      const id = String(run.id);
      setAttr(tr, 'data-run-id', id);
      setAttr(tr, 'data-status', run.status == null ? 'unknown' : String(run.status));
      setAttr(r.link, 'href', runHref(id));
      setText(r.link, id);
      setBadge(r.badge, run.status);
      setText(r.step, display(run.current_step));
      const wait = run.wait && typeof run.wait === 'object' ? run.wait : null;
      setHidden(r.waitHint, !wait);
      if (wait) {
        setText(r.waitKind, 'waiting for ' + display(wait.kind));
        setAttr(r.waitDue, 'data-deadline', wait.deadline || null);
        setAttr(r.waitDue, 'title', wait.deadline ? 'deadline ' + String(wait.deadline) : null);
        if (!wait.deadline) setText(r.waitDue, 'no deadline');
      } else {
        setAttr(r.waitDue, 'data-deadline', null);
      }
      setText(r.outcome, display(run.outcome));
      setText(r.business, display(run.business));
      const who = run.lead && typeof run.lead === 'object' ? run.lead : null;
      setText(r.leadName, who ? display(who.name) : display(run.lead_id));
      setText(r.leadPhone, who ? maskPhone(who.phone) : '');
      setAttr(r.lead, 'href', runHref(id) + '#run-lead');
      setAttr(r.lead, 'title', 'lead ' + String(run.lead_id));
      setAttr(r.updated, 'data-rel-ts', run.updated_at || null);
      setAttr(r.updated, 'datetime', run.updated_at || null);
      setAttr(r.updated, 'title', run.updated_at ? absolute(run.updated_at) + ' (' + run.updated_at + ')' : null);
      if (!run.updated_at) setText(r.updated, '—');
    }

    const rowRefs = new WeakMap();

    function render() {
      syncChildren(tbody, state.rows, (run) => String(run.id), createRow, updateRow);
      setHidden($('#runs-loading'), state.loaded);
      setHidden($('#runs-empty'), !(state.loaded && state.rows.length === 0));
      setHidden(loadMoreButton, !state.cursor);
      setText($('#runs-count'), state.loaded
        ? state.rows.length + (state.rows.length === 1 ? ' run' : ' runs') + (state.cursor ? ' shown' : '')
        : '');
      tickLive();
    }

    const poll = poller(refresh, RUNS_REFRESH_MS);

    function applyFilters() {
      state.generation += 1;
      state.rows = [];
      state.cursor = null;
      state.extraPages = false;
      state.loaded = false;
      clearError('poll');
      clearError('action');
      render();
      const search = new URLSearchParams(filters()).toString();
      history.replaceState(null, '', location.pathname + (search ? '?' + search : ''));
      poll.run();
    }

    let debounce = null;
    let applied = JSON.stringify(filters());
    function applyIfChanged() {
      clearTimeout(debounce);
      const now = JSON.stringify(filters());
      if (now === applied) return;
      applied = now;
      applyFilters();
    }
    for (const f of FILTERS) {
      if (f.typed) {
        f.node.addEventListener('input', () => {
          clearTimeout(debounce);
          debounce = setTimeout(applyIfChanged, 300);
        });
      } else {
        f.node.addEventListener('change', applyIfChanged);
      }
    }
    $('#filters').addEventListener('submit', (event) => {
      event.preventDefault();
      applyIfChanged();
    });
    loadMoreButton.addEventListener('click', loadMore);

    // The whole row opens the run; the id cell holds the real link (for
    // keyboard, middle-click and "open in new tab").
    tbody.addEventListener('click', (event) => {
      if (event.defaultPrevented || event.button !== 0) return;
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      if (event.target.closest('a, button, input, select, textarea')) return;
      const selection = window.getSelection();
      if (selection && String(selection).length > 0) return;
      const tr = event.target.closest('tr[data-run-id]');
      if (tr) location.href = runHref(tr.getAttribute('data-run-id'));
    });

    render();
    poll.run();
    followEvents('', poll);
  }

  // ------------------------------------------------------------------ one run

  function initRunView(id) {
    setHidden($('#run-view'), false);
    document.title = 'Run ' + id + ' · Switchboard';
    setText($('#run-id'), id);

    const cancelButton = $('#cancel-button');
    const retryButton = $('#retry-button');
    const resumeButton = $('#resume-button');
    const timeline = $('#timeline');
    const pipeline = $('#pipeline');
    const stepRefs = new WeakMap();
    const path = '/runs/' + encodeURIComponent(id);
    let current = null;

    async function refresh() {
      let run;
      try {
        run = await api(path);
      } catch (err) {
        setError('poll', err);
        setLive('error', err.status === 404 ? 'Not found' : 'Connection problem');
        return;
      }
      clearError('poll');
      if (!run || typeof run !== 'object') return;
      current = run;
      render(run);
      if (TERMINAL.has(run.status)) {
        poll.stop();
        setLive('done', 'Finished');
      } else {
        setLive('live', 'Live');
      }
    }

    const poll = poller(refresh, RUN_REFRESH_MS);

    // Where the lead's calling hours are checked, their consent record and whether their number
    // is on the business' do-not-call list (read once: they rarely change during a run).
    let leadShown = false;
    async function showLead(leadId) {
      let page;
      try {
        page = await api('/leads/' + encodeURIComponent(leadId));
      } catch (_) {
        return; // erased, or not the caller's: the facts stay blank
      }
      const local = page.local_time;
      setText($('#run-lead-local'), local
        ? local.zones.join(', ') + (local.region ? ' (' + local.region + ')' : '') + ' · from ' + String(local.from).replace('_', ' ')
        : '\u2014');
      const consent = page.lead && page.lead.consent;
      setText($('#run-lead-consent'), consent ? display(consent.source) + ', ' + absolute(consent.at) : 'none recorded');
      const dnc = page.do_not_call;
      setText($('#run-lead-dnc'), dnc ? 'listed (' + display(dnc.reason) + ')' + (dnc.note ? ': ' + dnc.note : '') : 'not listed');
    }

    function render(run) {
      setBadge($('#run-status'), run.status);
      setText($('#run-business'), display(run.business));
      setText($('#run-lead'), display(run.lead_id));
      setText($('#run-workflow'), display(run.workflow));
      setText($('#run-current-step'), display(run.current_step));
      setText($('#run-outcome'), display(run.outcome));
      const script = run.script && typeof run.script === 'object' ? run.script : null;
      setText($('#run-script'), script ? 'version ' + script.version + ' (' + String(script.hash).slice(0, 12) + ')' : 'defaults (no script)');
      setText($('#run-config'), run.config_version != null ? 'version ' + run.config_version : 'active');
      if (!leadShown && run.lead_id && run.workflow === 'lead_call') {
        leadShown = true;
        showLead(run.lead_id);
      }
      setTime($('#run-created'), run.created_at);
      setTime($('#run-updated'), run.updated_at);

      const hasError = run.error !== null && run.error !== undefined && run.error !== '';
      setHidden($('#run-error'), !hasError);
      setText($('#run-error-text'), hasError ? pretty(run.error) : '');

      renderCall(Array.isArray(run.steps) ? run.steps : []);
      setHidden(cancelButton, TERMINAL.has(run.status));
      setHidden(retryButton, run.status !== 'failed');
      setHidden(resumeButton, run.status !== 'waiting');

      const wait = run.wait && typeof run.wait === 'object' ? run.wait : null;
      setHidden($('#wait-box'), !wait);
      if (wait) {
        setText($('#wait-kind'), display(wait.kind));
        setText($('#wait-key'), display(wait.key));
        setTime($('#wait-deadline'), wait.deadline);
        const cd = $('#wait-countdown');
        setAttr(cd, 'data-deadline', wait.deadline || null);
        if (!wait.deadline) setText(cd, '(no deadline)');
      } else {
        setAttr($('#wait-countdown'), 'data-deadline', null);
      }

      const steps = Array.isArray(run.steps) ? run.steps.filter((s) => s && typeof s === 'object') : [];
      renderPipeline(run, steps);

      // Key = name#attempt#n; n disambiguates repeats (a follow-up loops back
      // into place_call) so each attempt keeps its own node.
      const counts = new Map();
      const keyed = steps.map((step) => {
        const base = String(step.name) + '#' + String(step.attempt);
        const n = (counts.get(base) || 0) + 1;
        counts.set(base, n);
        return { key: base + '#' + n, step };
      });
      syncChildren(timeline, keyed, (k) => k.key, (k) => createStep(k.step), (node, k) => updateStep(node, k.step));
      setHidden($('#timeline-empty'), steps.length > 0);
      tickLive();
    }

    // The call as people read it: the transcript as a conversation, the score with its reasons.
    function renderCall(steps) {
      const lastWith = (name, pick) => {
        for (let i = steps.length - 1; i >= 0; i--) {
          if (steps[i].name !== name) continue;
          const v = pick(steps[i]);
          if (v != null) return v;
        }
        return null;
      };
      const transcript = lastWith('analyze', (s) =>
        s.input && typeof s.input.transcript === 'string' ? s.input.transcript : null);
      const score = lastWith('score', (s) =>
        s.output && s.output.result && s.output.result.score ? s.output.result.score : null);
      const analysis = lastWith('score', (s) =>
        s.input && s.input.analysis && typeof s.input.analysis === 'object' ? s.input.analysis : null);
      setHidden($('#analysis-box'), analysis == null);
      if (analysis) {
        setText($('#analysis-summary'), display(analysis.summary));
        setText($('#analysis-sentiment'), display(analysis.sentiment));
        const objections = Array.isArray(analysis.objections) ? analysis.objections : [];
        setText($('#analysis-objections'), objections.length ? objections.join('; ') : 'none');
        setText($('#analysis-next'), display(analysis.next_action));
      }
      setHidden($('#call-box'), transcript == null && score == null);
      setHidden($('#score-box'), score == null);
      if (score) {
        setText($('#score-value'), display(score.value) + ' / 100');
        setText($('#score-tag'), display(score.tag));
        const reasons = (Array.isArray(score.reasons) ? score.reasons : [])
          .map((text, i) => ({ key: i + ':' + text, text: String(text) }));
        syncChildren($('#score-reasons'), reasons, (r) => r.key,
          () => el('li'), (li, r) => setText(li, r.text));
      }
      const lines = (transcript || '').split('\n').filter((l) => l.trim() !== '')
        .map((text, i) => ({ key: i + ':' + text, text }));
      syncChildren($('#transcript'), lines, (l) => l.key,
        () => el('li', {}, el('span', { class: 'speaker' }), el('span', { class: 'said' })),
        (li, { text: line }) => {
          const cut = line.indexOf(':');
          const who = cut > 0 ? line.slice(0, cut).trim() : '';
          setAttr(li, 'data-speaker', who || 'unknown');
          setText(li.firstChild, who === 'agent' ? 'Agent' : who === 'user' ? 'Lead' : who);
          setText(li.lastChild, cut > 0 ? line.slice(cut + 1).trim() : line);
        });
    }

    function renderPipeline(run, steps) {
      if (run.workflow !== 'lead_call') {
        setHidden(pipeline, true);
        return;
      }
      const latest = new Map();
      for (const step of steps) latest.set(step.name, step.status);
      const items = LEAD_CALL_STEPS.map((name) => ({ name, state: latest.has(name) ? String(latest.get(name)) : 'pending' }));
      syncChildren(pipeline, items, (i) => i.name,
        (i) => el('li', { class: 'pipeline-step' }, i.name),
        (node, i) => {
          setAttr(node, 'data-state', i.state);
          setAttr(node, 'title', i.name + ': ' + i.state);
          setAttr(node, 'aria-current', run.current_step === i.name && !TERMINAL.has(run.status) ? 'step' : null);
        });
      setHidden(pipeline, false);
    }

    function ioBlock(title, extraClass) {
      const pre = el('pre', { class: 'io-body' });
      const wrap = el('div', { class: 'io' + (extraClass ? ' ' + extraClass : '') }, el('h4', null, title), pre);
      return { wrap, pre };
    }

    function createStep(step) {
      const name = el('span', { class: 'step-name' });
      const attempt = el('span', { class: 'step-attempt' });
      const badge = el('span', { class: 'status-badge' });
      const started = el('time', { class: 'step-started' });
      const took = el('span', { class: 'step-duration' });
      const summary = el('summary');
      const input = ioBlock('Input');
      const output = ioBlock('Output');
      const error = ioBlock('Error', 'io-error');
      const log = ioBlock('Log', 'io-log');
      const details = el('details', { class: 'step-details' }, summary, input.wrap, output.wrap, error.wrap, log.wrap);
      const li = el('li', { class: 'step' },
        el('div', { class: 'step-head' },
          name, attempt, badge,
          el('span', { class: 'step-timing' }, started, took)),
        details);
      // A failure shows its error straight away; otherwise the operator opens it.
      if (step.status === 'failed' && step.error != null && step.error !== '') details.open = true;
      stepRefs.set(li, { name, attempt, badge, started, took, summary, details, input, output, error, log });
      return li;
    }

    function updateStep(li, step) {
      const r = stepRefs.get(li);
      const status = step.status == null ? 'unknown' : String(step.status);
      setAttr(li, 'data-step', String(step.name));
      setAttr(li, 'data-attempt', String(step.attempt));
      setAttr(li, 'data-status', status);
      setText(r.name, display(step.name));
      // A deferred attempt (a busy line, say) waits as the same attempt: say how often.
      const deferrals = Number(step.deferrals) || 0;
      setText(r.attempt, 'attempt ' + display(step.attempt) + (deferrals > 0 ? ' · put off ' + deferrals + '×' : ''));
      setBadge(r.badge, status);

      if (step.started_at) {
        setText(r.started, 'started ' + absolute(step.started_at));
        setAttr(r.started, 'datetime', step.started_at);
        setAttr(r.started, 'title', step.started_at);
      } else if (step.due_at && !TERMINAL.has(status)) {
        setText(r.started, 'due ' + absolute(step.due_at));
        setAttr(r.started, 'datetime', step.due_at);
        setAttr(r.started, 'title', step.due_at);
      } else {
        setText(r.started, 'not started');
        setAttr(r.started, 'datetime', null);
        setAttr(r.started, 'title', null);
      }
      const start = parseTime(step.started_at);
      const end = parseTime(step.finished_at);
      if (Number.isFinite(start) && Number.isFinite(end)) {
        setAttr(r.took, 'data-since', null);
        setText(r.took, duration(end - start));
      } else if (Number.isFinite(start) && !TERMINAL.has(status)) {
        setAttr(r.took, 'data-since', step.started_at); // ticking "12 s so far"
      } else {
        setAttr(r.took, 'data-since', null);
        setText(r.took, '');
      }

      const present = (v) => v !== null && v !== undefined && v !== '';
      const parts = [];
      for (const [key, label, block] of [['input', 'Input', r.input], ['output', 'Output', r.output], ['error', 'Error', r.error]]) {
        const has = present(step[key]);
        setHidden(block.wrap, !has);
        setText(block.pre, has ? pretty(step[key]) : '');
        if (has) parts.push(label);
      }
      const lines = Array.isArray(step.log) ? step.log.map(String) : [];
      setHidden(r.log.wrap, lines.length === 0);
      setText(r.log.pre, lines.join('\n'));
      if (lines.length > 0) parts.push('Log');
      setText(r.summary, parts.join(' · '));
      setHidden(r.details, parts.length === 0);
    }

    // Cancel, retry and resume: POST the action, then follow the run again.
    function action(button, name, busyLabel) {
      const label = button.textContent;
      button.addEventListener('click', async () => {
        if (button.disabled) return;
        button.disabled = true;
        setText(button, busyLabel);
        try {
          await api(path + '/' + name, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: '{}',
          });
          clearError('action');
        } catch (err) {
          setError('action', err);
        } finally {
          button.disabled = false;
          setText(button, label);
        }
        poll.start();
      });
    }
    action(cancelButton, 'cancel', 'Cancelling…');
    action(retryButton, 'retry', 'Retrying…');
    action(resumeButton, 'resume', 'Resuming…');
    followEvents('run=' + encodeURIComponent(id), poll);

    // Countdowns and "so far" durations tick even while a refresh is slow.
    setInterval(() => { if (current && !document.hidden) tickLive(); }, 1000);
    poll.run();
  }

  // --------------------------------------------------------------- overview

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text != null) node.textContent = String(text);
    return node;
  }

  /** Horizontal bars, each labelled with its name and value (readable without colour). */
  function barChart(node, items) {
    const rowH = 26;
    const width = 420;
    const labelW = 130;
    const max = Math.max(1, ...items.map((i) => i.value));
    node.replaceChildren();
    node.setAttribute('viewBox', '0 0 ' + width + ' ' + Math.max(rowH, items.length * rowH));
    items.forEach((item, i) => {
      const y = i * rowH;
      const w = Math.round((width - labelW - 50) * item.value / max);
      node.append(
        svg('text', { x: 0, y: y + 17, class: 'bar-label' }, item.label),
        svg('rect', { x: labelW, y: y + 5, width: Math.max(w, 1), height: rowH - 10, rx: 3, class: 'bar' }),
        svg('text', { x: labelW + w + 6, y: y + 17, class: 'bar-value' }, item.value));
    });
    if (items.length === 0) node.append(svg('text', { x: 0, y: 17, class: 'bar-label' }, 'nothing yet'));
  }

  /** Vertical bars for the ten score buckets. */
  function scoreChart(node, buckets) {
    const width = 420;
    const height = 160;
    const colW = width / 10;
    const max = Math.max(1, ...buckets);
    node.replaceChildren();
    node.setAttribute('viewBox', '0 0 ' + width + ' ' + (height + 36));
    buckets.forEach((n, i) => {
      const h = Math.round((height - 20) * n / max);
      const x = i * colW;
      node.append(
        svg('rect', { x: x + 4, y: height - h, width: colW - 8, height: Math.max(h, 1), rx: 3, class: 'bar' }),
        svg('text', { x: x + colW / 2, y: height - h - 4, class: 'bar-value', 'text-anchor': 'middle' }, n),
        svg('text', { x: x + colW / 2, y: height + 16, class: 'bar-label', 'text-anchor': 'middle' }, String(i * 10)));
    });
    node.append(svg('text', { x: width / 2, y: height + 34, class: 'bar-label', 'text-anchor': 'middle' }, 'score (tens)'));
  }

  function initOverviewView() {
    setHidden($('#overview-view'), false);
    document.title = 'Overview · Switchboard';
    const business = $('#overview-business');
    const days = $('#overview-days');

    async function refresh() {
      const q = new URLSearchParams();
      if (business.value.trim()) q.set('business', business.value.trim());
      q.set('from', new Date(Date.now() - Number(days.value) * 86400000).toISOString());
      let data;
      let analytics;
      try {
        // The charts and the breakdown are the analytics of the period's leads; the table
        // below them, each business' activity in the period.
        [data, analytics] = await Promise.all([
          api('/overview?' + q.toString()),
          api('/analytics?' + q.toString()),
        ]);
        clearError('poll');
        setLive('live', 'Live');
      } catch (err) {
        setError('poll', err);
        return;
      }
      const all = data.overall || {};
      setText($('#overview-range'), absolute(data.from) + ' – ' + absolute(data.to));
      const funnel = analytics.funnel || {};
      barChart($('#chart-funnel'), [
        { label: 'leads', value: funnel.leads || 0 },
        { label: 'called', value: funnel.called || 0 },
        { label: 'connected', value: funnel.connected || 0 },
        { label: 'qualified', value: funnel.qualified || 0 },
        { label: 'handed off', value: funnel.handed_off || 0 },
      ]);
      const outcomes = Object.entries(analytics.outcomes || {})
        .map(([label, value]) => ({ label, value })).sort((a, b) => b.value - a.value);
      barChart($('#chart-outcomes'), outcomes);
      scoreChart($('#chart-scores'), Array.isArray(analytics.score_distribution) ? analytics.score_distribution : new Array(10).fill(0));
      const groups = [['agent', analytics.by_agent], ['campaign', analytics.by_campaign], ['objective', analytics.by_objective]]
        .flatMap(([by, items]) => (Array.isArray(items) ? items : []).map((g) => Object.assign({ by }, g)));
      const percent = (v) => (v == null ? '—' : Math.round(v * 100) + '%');
      syncChildren($('#analytics-table tbody'), groups, (g) => g.by + ':' + String(g.key),
        () => el('tr', {}, ...Array.from({ length: 6 }, () => el('td'))),
        (tr, g) => {
          const values = [g.by, g.key == null ? '(none)' : g.key, g.calls, g.connected, percent(g.connect_rate),
            g.average_score == null ? '—' : Math.round(g.average_score)];
          values.forEach((v, i) => setText(tr.children[i], display(v)));
        });
      const rows = (Array.isArray(data.businesses) ? data.businesses : []).concat([Object.assign({ id: 'all' }, all)]);
      syncChildren($('#overview-table tbody'), rows, (r) => String(r.id),
        () => el('tr', {}, ...Array.from({ length: 7 }, () => el('td'))),
        (tr, r) => {
          const cells = tr.children;
          const values = [r.id, r.leads, r.calls_placed, r.connected,
            Math.round((r.connect_rate || 0) * 100) + '%', r.failures, r.follow_ups_due];
          values.forEach((v, i) => setText(cells[i], display(v)));
        });
    }

    const poll = poller(refresh, 5000);
    business.addEventListener('input', () => poll.run());
    days.addEventListener('change', () => poll.run());
    $('#overview-filters').addEventListener('submit', (e) => { e.preventDefault(); poll.run(); });
    poll.run();
    followEvents(business.value.trim() ? 'business=' + encodeURIComponent(business.value.trim()) : '', poll);
  }

  // ------------------------------------------------------------- businesses

  function businessHref(id) {
    return '/businesses/' + encodeURIComponent(String(id));
  }

  // Schedules: each business' cron campaigns, with their next and last ticks and a button to
  // pause or resume each.
  async function initSchedulesView() {
    setHidden($('#schedules-view'), false);
    document.title = 'Schedules · Switchboard';
    async function refresh() {
      let items;
      try {
        const data = await api('/schedules');
        items = Array.isArray(data && data.schedules) ? data.schedules : [];
        clearError('poll');
        setLive('live', 'Live');
      } catch (err) {
        setError('poll', err);
        return;
      }
      setHidden($('#schedules-empty'), items.length > 0);
      syncChildren($('#schedules-table tbody'), items, (s) => s.business + '/' + s.name,
        (s) => {
          const button = el('button', { type: 'button', class: 'button' });
          button.addEventListener('click', async () => {
            const action = button.getAttribute('data-action');
            button.disabled = true;
            try {
              await api('/businesses/' + encodeURIComponent(s.business) + '/schedules/' +
                encodeURIComponent(s.name) + '/' + action, { method: 'POST' });
              clearError('action');
            } catch (err) {
              setError('action', err);
            }
            button.disabled = false;
            poll.run();
          });
          const action = el('td', {}, button);
          return el('tr', { 'data-schedule': s.business + '/' + s.name },
            ...Array.from({ length: 7 }, () => el('td')), action);
        },
        (tr, s) => {
          const last = Array.isArray(s.recent_ticks) && s.recent_ticks.length ? s.recent_ticks[0] : null;
          const values = [s.business, s.name, s.cron + ' (' + s.timezone + ')',
            'tagged ' + s.tag + ', idle ' + s.idle_days + ' d, at most ' + s.limit,
            s.paused ? '—' : absolute(s.next_tick),
            last ? absolute(last.at) + ' · ' + last.runs_started + ' called' : 'never',
            s.paused ? 'Paused' : 'Active'];
          values.forEach((v, i) => setText(tr.children[i], display(v)));
          const button = tr.children[7].firstChild;
          button.setAttribute('data-action', s.paused ? 'resume' : 'pause');
          setText(button, s.paused ? 'Resume' : 'Pause');
        });
    }
    const poll = poller(refresh, 5000);
    poll.run();
  }

  // Dead letters (operators): each with its error, and a button to process it again.
  async function initDeadLettersView() {
    setHidden($('#dead-letters-view'), false);
    document.title = 'Dead letters · Switchboard';
    async function refresh() {
      try {
        const data = await api('/dead-letters');
        const items = Array.isArray(data && data.dead_letters) ? data.dead_letters : [];
        setHidden($('#dead-letters-empty'), items.length > 0);
        syncChildren($('#dead-letter-list'), items, (d) => String(d.id),
          (d) => {
            const button = el('button', { type: 'button', class: 'button' }, 'Replay');
            button.addEventListener('click', async () => {
              button.disabled = true;
              try {
                await api('/dead-letters/' + encodeURIComponent(d.id) + '/replay', { method: 'POST' });
                clearError('action');
              } catch (err) {
                setError('action', err);
              }
              button.disabled = false;
              refresh();
            });
            return el('li', { class: 'card dead-letter', 'data-dead-letter-id': String(d.id) },
              el('code', {}), el('span', { class: 'muted' }), el('pre', { class: 'log' }), button);
          },
          (li, d) => {
            setText(li.children[0], d.id);
            setText(li.children[1], ' ' + display(d.provider) + ' · received ' + absolute(d.received_at) +
              ' · failed ' + d.failures + '×');
            setText(li.children[2], display(d.error));
          });
        clearError('poll');
        setLive('done', 'Loaded');
      } catch (err) {
        setError('poll', err);
      }
    }
    await refresh();
  }

  async function initBusinessesView() {
    setHidden($('#businesses-view'), false);
    document.title = 'Businesses · Switchboard';
    try {
      const data = await api('/businesses');
      const items = Array.isArray(data && data.businesses) ? data.businesses : [];
      syncChildren($('#business-list'), items, (b) => String(b.id),
        () => el('li', { class: 'card' }, el('a', {}), el('span', { class: 'muted' })),
        (li, b) => {
          setAttr(li.firstChild, 'href', businessHref(b.id));
          setText(li.firstChild, display(b.name) + ' (' + display(b.id) + ')');
          setText(li.lastChild, ' ' + display(b.industry) + ' · ' + display(b.timezone));
        });
      clearError('poll');
      setLive('done', 'Loaded');
    } catch (err) {
      setError('poll', err);
    }
  }

  // A small Rhai highlighter: comments, strings, numbers, keywords and function names get a
  // class each; everything is escaped text nodes, never HTML.
  const RHAI_KEYWORDS = new Set(['fn', 'let', 'const', 'if', 'else', 'return', 'for', 'in',
    'while', 'loop', 'break', 'continue', 'true', 'false', 'switch', 'throw', 'try', 'catch',
    'this', 'private', 'global']);
  const RHAI_TOKEN = /(\/\/[^\n]*)|("(?:[^"\\\n]|\\.)*"|`[^`]*`|'(?:[^'\\]|\\.)')|(\b\d[\d_]*(?:\.\d+)?\b)|([A-Za-z_][A-Za-z0-9_]*)(\s*\()?/g;

  function highlightLine(line) {
    const frag = document.createDocumentFragment();
    let last = 0;
    RHAI_TOKEN.lastIndex = 0;
    let m;
    while ((m = RHAI_TOKEN.exec(line)) !== null) {
      if (m.index > last) frag.append(line.slice(last, m.index));
      let cls = null;
      let text = m[0];
      if (m[1]) cls = 'tok-comment';
      else if (m[2]) cls = 'tok-string';
      else if (m[3]) cls = 'tok-number';
      else if (m[4] && RHAI_KEYWORDS.has(m[4])) { cls = 'tok-keyword'; text = m[4]; }
      else if (m[4] && m[5]) { cls = 'tok-call'; text = m[4]; }
      else text = m[4] || m[0];
      frag.append(cls ? el('span', { class: cls }, text) : text);
      last = m.index + text.length;
      RHAI_TOKEN.lastIndex = last;
    }
    if (last < line.length) frag.append(line.slice(last));
    return frag;
  }

  /** Renders `source` into `pre` as numbered, highlighted lines; `marks` maps line → message. */
  function renderCode(pre, source, marks) {
    pre.replaceChildren();
    String(source || '').split('\n').forEach((line, i) => {
      const n = i + 1;
      const row = el('span', { class: 'code-line', 'data-line': String(n) },
        el('span', { class: 'line-no', 'aria-hidden': 'true' }, String(n)),
        highlightLine(line));
      if (marks && marks.has(n)) {
        row.classList.add('has-error');
        row.append(el('span', { class: 'line-error' }, '  \u2190 ' + marks.get(n)));
      }
      pre.append(row, '\n');
    });
  }

  // The business' configuration, edited as JSON and saved as a new version (PUT …/config),
  // checked by the server: a refusal names the field.
  async function initConfigForm(base) {
    const editor = $('#config-editor');
    const summary = $('#config-summary');
    async function load() {
      const [config, versions] = await Promise.all([api(base + '/config'), api(base + '/config/versions')]);
      editor.value = JSON.stringify(config.config, null, 2);
      const items = Array.isArray(versions && versions.versions) ? versions.versions : [];
      syncChildren($('#config-versions'), items, (v) => String(v.version),
        () => el('li'),
        (li, v) => setText(li, 'v' + v.version + (v.active ? ' (active)' : '') + ' · ' + absolute(v.created_at)));
    }
    try {
      await load();
    } catch (err) {
      setError('poll', err);
      return;
    }
    $('#config-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      let config;
      try {
        config = JSON.parse(editor.value);
      } catch (err) {
        setText(summary, 'Not JSON: ' + err.message);
        return;
      }
      try {
        const saved = await api(base + '/config', {
          method: 'PUT',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(config),
        });
        setText(summary, saved.changed ? 'Saved as version ' + saved.version + '.' : 'Unchanged: version ' + saved.version + '.');
        await load();
      } catch (err) {
        setText(summary, 'Not saved: ' + err.message);
      }
    });
  }

  // The business' do-not-call list: the first hundred numbers, each with a button to take it
  // off, and a form to add numbers (the server refuses the lot if one is not a number).
  async function initDncForm(base) {
    const summary = $('#dnc-summary');
    async function load() {
      const data = await api(base + '/do-not-call?limit=100');
      const entries = Array.isArray(data && data.entries) ? data.entries : [];
      setHidden($('#dnc-empty'), entries.length > 0);
      syncChildren($('#dnc-list'), entries, (e) => String(e.phone),
        () => el('li', {}, el('span'), ' ', el('button', { type: 'button', class: 'button' }, 'Remove')),
        (li, e) => {
          setText(li.firstChild, e.phone + ' · ' + display(e.reason) + (e.note ? ' · ' + e.note : '') + ' · ' + absolute(e.added_at));
          li.lastChild.onclick = async () => {
            try {
              await api(base + '/do-not-call/' + encodeURIComponent(e.phone), { method: 'DELETE' });
              setText(summary, e.phone + ' is off the list.');
              await load();
            } catch (err) {
              setText(summary, 'Not removed: ' + err.message);
            }
          };
        });
    }
    try {
      await load();
    } catch (err) {
      setError('poll', err);
      return;
    }
    $('#dnc-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const phones = $('#dnc-phones').value.split(/\s+/).map((p) => p.trim()).filter(Boolean);
      if (phones.length === 0) return;
      try {
        const added = await api(base + '/do-not-call', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ phones: phones }),
        });
        setText(summary, 'Added ' + added.added + (added.already ? ', ' + added.already + ' already listed' : '') + '.');
        $('#dnc-phones').value = '';
        await load();
      } catch (err) {
        setText(summary, 'Not added: ' + err.message);
      }
    });
  }

  async function initBusinessView(id) {
    setHidden($('#business-view'), false);
    document.title = 'Business ' + id + ' · Switchboard';
    const base = '/businesses/' + encodeURIComponent(id);
    let business, script, versions;
    try {
      [business, script, versions] = await Promise.all([
        api(base), api(base + '/script').catch(() => null), api(base + '/script/versions'),
      ]);
      clearError('poll');
    } catch (err) {
      setError('poll', err);
      return;
    }
    setText($('#business-name'), display(business.name));
    setText($('#business-id'), id);
    setText($('#business-industry'), display(business.industry));
    setText($('#business-timezone'), display(business.timezone));
    setText($('#business-agent'), display(business.default_agent));
    setText($('#business-script'), business.script
      ? 'version ' + business.script.version + ' (' + String(business.script.hash).slice(0, 10) + ')'
      : 'none (defaults)');
    const terms = Object.entries(business.terminology || {});
    syncChildren($('#business-terms'), terms, ([k]) => k,
      () => el('div', {}, el('dt'), el('dd')),
      (div, [k, v]) => { setText(div.firstChild, k); setText(div.lastChild, String(v)); });
    syncChildren($('#business-objectives'), business.objectives || [], (o) => String(o.name),
      () => el('li', {}, el('strong'), el('span')),
      (li, o) => { setText(li.firstChild, o.name); setText(li.lastChild, o.description ? ' — ' + o.description : ''); });
    syncChildren($('#business-campaigns'), business.campaigns || [], (c) => String(c.name),
      () => el('li'),
      (li, c) => setText(li, c.name + ': source ' + c.source + ' → agent ' + c.agent + (c.objective ? ', ' + c.objective : '')));
    const items = Array.isArray(versions && versions.versions) ? versions.versions : [];
    syncChildren($('#script-versions'), items, (v) => String(v.version),
      () => el('li'),
      (li, v) => setText(li, 'v' + v.version + (v.active ? ' (active)' : '') + ' · ' + String(v.hash).slice(0, 10) + ' · ' + absolute(v.created_at)));
    initConfigForm(base);
    initDncForm(base);
    const source = script ? script.source : '';
    renderCode($('#script-source'), source, null);
    const editor = $('#script-editor');
    editor.value = source;

    async function post(path) {
      return api(base + path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ source: editor.value }),
      });
    }

    $('#script-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      setHidden($('#dry-run-result'), true);
      let report;
      try {
        report = await post('/script/validate');
        clearError('action');
      } catch (err) {
        setError('action', err);
        return;
      }
      const errors = Array.isArray(report.errors) ? report.errors : [];
      const failed = (Array.isArray(report.tests) ? report.tests : []).filter((t) => t && t.passed === false);
      setText($('#validate-summary'), report.valid
        ? 'Valid: compiles, entry points fit, every test passes.'
        : 'Not valid: ' + errors.length + ' error(s), ' + failed.length + ' failed test(s).');
      const problems = errors.map((e, i) => ({ key: 'e' + i, line: e.line, text:
        (e.line ? 'line ' + e.line + (e.column ? ':' + e.column : '') + ': ' : '') + display(e.message) }))
        .concat(failed.map((t, i) => ({ key: 't' + i, line: null, text: 'test ' + display(t.name) + ': ' + display(t.error) })));
      syncChildren($('#validate-errors'), problems, (p) => p.key, () => el('li'), (li, p) => setText(li, p.text));
      const marks = new Map();
      for (const e of errors) if (e.line) marks.set(Number(e.line), display(e.message));
      renderCode($('#validate-lines'), editor.value, marks);
      setHidden($('#validate-lines'), marks.size === 0);
    });

    $('#dry-run-button').addEventListener('click', async () => {
      try {
        const result = await post('/script/dry-run');
        clearError('action');
        setText($('#dry-run-result'), pretty(result));
        setHidden($('#dry-run-result'), false);
      } catch (err) {
        setError('action', err);
      }
    });

    // Backtest: the editor's script replayed over the business' recorded decisions (backtest.js).
    if (window.SwitchboardBacktest) {
      window.SwitchboardBacktest.init({
        base, editor, $, el, api, setText, setAttr, setHidden, setBadge, syncChildren,
        display, absolute, runHref, renderCode,
      });
    } else {
      setHidden($('#backtest-button'), true);
      setHidden($('#backtest-days').parentNode, true);
    }
    setLive('done', 'Loaded');
  }

  // ------------------------------------------------------------------ sign-in

  // Every page needs a session: a key is traded for an HttpOnly cookie (POST /sessions), and
  // GET /sessions/current gives the CSRF token that actions send back.
  let signInShown = false;

  function showSignIn() {
    if (signInShown) return;
    signInShown = true;
    for (const view of document.querySelectorAll('.view')) setHidden(view, true);
    setHidden($('#session'), true);
    setHidden($('#sign-in-view'), false);
    $('#sign-in-key').focus();
  }

  function initSignIn() {
    $('#sign-in-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const key = $('#sign-in-key').value.trim();
      if (!key) return;
      try {
        await api('/sessions', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ key: key }),
        });
        location.reload();
      } catch (err) {
        setText($('#sign-in-error'), err.status === 401 ? 'That key is unknown or revoked.' : err.message);
        setHidden($('#sign-in-error'), false);
      }
    });
    $('#sign-out').addEventListener('click', async () => {
      try {
        await api('/sessions/current', { method: 'DELETE' });
      } catch (err) {
        setError('action', err);
        return;
      }
      location.reload();
    });
  }

  /** Resolves with the caller when signed in; shows the sign-in form and resolves null if not. */
  async function startSession() {
    let who;
    try {
      who = await api('/sessions/current');
    } catch (err) {
      if (err.status !== 401) setError('session', err);
      return null;
    }
    session.csrfToken = who.csrf_token || null;
    if (who.csrf_header) session.csrfHeader = who.csrf_header;
    setText($('#session-who'), who.operator ? 'Operator' : 'Business ' + who.business);
    setHidden($('#session'), false);
    setHidden($('#nav-dead-letters'), !who.operator);
    return who;
  }

  // ------------------------------------------------------------------ startup

  async function start() {
    initSignIn();
    if (!(await startSession())) return;
    $('#error-dismiss').addEventListener('click', () => {
      errors.clear();
      renderErrors();
    });

    const business = /^\/businesses\/([^/]+)\/?$/.exec(location.pathname);
    if (business) {
      let id;
      try { id = decodeURIComponent(business[1]); } catch (_) { id = business[1]; }
      initBusinessView(id);
      return;
    }
    if (/^\/overview\/?$/.test(location.pathname)) {
      initOverviewView();
      return;
    }
    if (/^\/businesses\/?$/.test(location.pathname)) {
      initBusinessesView();
      return;
    }
    if (/^\/schedules\/?$/.test(location.pathname)) {
      initSchedulesView();
      return;
    }
    if (/^\/dead-letters\/?$/.test(location.pathname)) {
      initDeadLettersView();
      return;
    }
    const match = /^\/runs\/([^/]+)\/?$/.exec(location.pathname);
    if (match) {
      let id;
      try {
        id = decodeURIComponent(match[1]);
      } catch (_) {
        id = match[1];
      }
      initRunView(id);
    } else {
      initRunsView();
      setInterval(() => { if (!document.hidden) tickLive(); }, 1000);
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
