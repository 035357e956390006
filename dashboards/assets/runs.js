// Switchboard operator dashboard: the runs list page, "/" (filters kept in the URL, counts per
// status, load more, live refresh). Safety rule: see core.js.

import {
  $, el, setText, setAttr, setHidden, setBadge, syncChildren, display, absolute, tickLive,
  runHref, api, setError, clearError, setLive, poller, followEvents,
} from './core.js';

const RUNS_PAGE_SIZE = 50;
const RUNS_REFRESH_MS = 2000;

// A phone number shown in a list: its last two digits (`+…71`), as the logs mask it.
function maskPhone(phone) {
  const text = phone == null ? '' : String(phone);
  return text.length > 2 ? '+…' + text.slice(-2) : text;
}

export function initRunsView() {
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

  // Relative times ("12s ago") tick between refreshes.
  setInterval(() => { if (!document.hidden) tickLive(); }, 1000);
}
