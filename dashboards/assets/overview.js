// Switchboard operator dashboard: the overview page, "/overview" (the period's funnel, outcomes
// and scores as charts, calls by agent, campaign and objective, each business' activity).
// Safety rule: see core.js.

import {
  $, el, setText, setHidden, syncChildren, display, absolute, api, setError, clearError,
  setLive, poller, followEvents,
} from './core.js';

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

export function initOverviewView() {
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
