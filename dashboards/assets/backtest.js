// Switchboard operator dashboard: the business page's backtest view, on "/businesses/{id}"
// (started by businesses.js).
//
// "Backtest" replays the editor's script over the business' recorded decisions
// (POST /api/v1/businesses/{id}/script/backtest), follows the backtest
// (GET /api/v1/backtests/{id}) until it is no longer running, then shows its
// report: tallies per hook, routing moves, tag transitions, the score
// histogram before and after, the candidate's errors and the changed
// decisions, each linking to its run.
//
// Safety rule: see core.js (API data is only ever put into the page as text,
// never parsed as HTML).

import {
  $, el, api, setText, setAttr, setHidden, setBadge, syncChildren, display, absolute, runHref,
} from './core.js';
import { renderCode } from './code.js';

const POLL_MS = 500;
const HOOKS = ['context', 'route', 'score', 'follow_up', 'on_no_answer'];
const BUCKETS = ['0–9', '10–19', '20–29', '30–39', '40–49', '50–59', '60–69', '70–79', '80–89', '90–100'];
const HISTOGRAM_REM = 7; // the tallest bar's height

/**
 * Starts the view on the business page: `base` is the business' API path
 * (`/businesses/{id}`), `editor` the script editor whose source is backtested.
 */
export function initBacktest(base, editor) {
  const button = $('#backtest-button');
  const days = $('#backtest-days');
  const section = $('#backtest');
  let generation = 0; // bumped by each new backtest; answers about an older one are dropped
  let timer = null;

  const count = (v) => (Number.isFinite(Number(v)) ? Number(v) : 0);
  const plural = (n, one, many) => n + ' ' + (n === 1 ? one : many || one + 's');

  function showMessage(text) {
    setText($('#backtest-message'), text || '');
    setHidden($('#backtest-message'), !text);
  }

  function reset() {
    showMessage(null);
    syncChildren($('#backtest-problems'), [], String, () => el('li'), () => {});
    setHidden($('#backtest-lines'), true);
    setHidden($('#backtest-report'), true);
    setHidden($('#backtest-progress'), true);
    setText($('#backtest-id'), '');
    setText($('#backtest-range'), '');
    setBadge($('#backtest-status'), 'starting');
  }

  // A refusal, as the validate button shows an invalid script: a summary line, the errors
  // (with their line) and the source with those lines marked.
  function showRefusal(err) {
    setBadge($('#backtest-status'), 'refused');
    const details = err.details && typeof err.details === 'object' ? err.details : null;
    if (err.code === 'invalid_script' && details) {
      const errors = Array.isArray(details.errors) ? details.errors.filter((e) => e && typeof e === 'object') : [];
      const failed = (Array.isArray(details.tests) ? details.tests : []).filter((t) => t && t.passed === false);
      showMessage('Not run: the script is not valid: ' + plural(errors.length, 'error') + ', ' +
        plural(failed.length, 'failed test') + '.');
      const problems = errors.map((e, i) => ({ key: 'e' + i, text:
        (e.line ? 'line ' + e.line + (e.column ? ':' + e.column : '') + ': ' : '') + display(e.message) }));
      syncChildren($('#backtest-problems'), problems, (p) => p.key, () => el('li'), (li, p) => setText(li, p.text));
      const marks = new Map();
      for (const e of errors) if (e.line) marks.set(Number(e.line), display(e.message));
      renderCode($('#backtest-lines'), editor.value, marks);
      setHidden($('#backtest-lines'), marks.size === 0);
      return;
    }
    if (err.status === 409) {
      showMessage('Not run: another backtest of this business is still running (' + err.message + ').');
      return;
    }
    let text = 'Not run: ' + (err.message || 'the backtest was refused') + (err.code ? ' (' + err.code + ')' : '');
    if (details && details.field) text += ' — ' + display(details.field);
    showMessage(text);
  }

  async function start() {
    generation += 1;
    const gen = generation;
    clearTimeout(timer);
    reset();
    setHidden(section, false);
    button.disabled = true;
    const body = { source: editor.value };
    // The range ends at the server's now; 30 days is the server's default start, another
    // period starts that many days before the browser's now.
    const n = Number(days.value);
    if (Number.isFinite(n) && n > 0 && n !== 30) body.from = new Date(Date.now() - n * 86400000).toISOString();
    let started;
    try {
      started = await api(base + '/script/backtest', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (err) {
      if (gen !== generation) return;
      showRefusal(err);
      button.disabled = false;
      return;
    }
    if (gen !== generation) return;
    render(started);
    if (started && started.status === 'running') follow(String(started.id), gen);
    else button.disabled = false;
  }

  async function follow(id, gen) {
    let status;
    try {
      status = await api('/backtests/' + encodeURIComponent(id));
    } catch (err) {
      if (gen !== generation) return;
      if (err.status === 404) {
        setBadge($('#backtest-status'), 'gone');
        showMessage('The backtest is gone: ' + err.message);
        button.disabled = false;
        return;
      }
      if (err.status === 401 || err.status === 403) {
        // Signed out or not allowed: asking again will not help.
        showMessage('Could not read the backtest: ' + err.message);
        button.disabled = false;
        return;
      }
      // A passing problem (the network, a restart): say so and keep following.
      showMessage('Could not read the backtest (' + err.message + '); trying again.');
      timer = setTimeout(() => follow(id, gen), POLL_MS * 4);
      return;
    }
    if (gen !== generation) return;
    render(status);
    if (status && status.status === 'running') timer = setTimeout(() => follow(id, gen), POLL_MS);
    else button.disabled = false;
  }

  function render(bt) {
    if (!bt || typeof bt !== 'object') return;
    const state = bt.status == null ? 'unknown' : String(bt.status);
    setBadge($('#backtest-status'), state);
    setText($('#backtest-id'), display(bt.id));
    const req = bt.request && typeof bt.request === 'object' ? bt.request : {};
    setText($('#backtest-range'), 'decisions from ' + absolute(req.from) + ' to ' + absolute(req.to) +
      (req.limit ? ', at most ' + req.limit : ''));

    const progress = bt.progress && typeof bt.progress === 'object' ? bt.progress : {};
    const done = count(progress.done);
    const total = count(progress.total);
    const bar = $('#backtest-progress-bar');
    setAttr(bar, 'max', String(Math.max(total, 1)));
    setAttr(bar, 'value', String(Math.min(done, Math.max(total, 1))));
    setText($('#backtest-progress-text'), (state === 'running' ? 'Replaying decisions: ' : 'Replayed ') +
      done + ' / ' + total);
    setHidden($('#backtest-progress'), false);

    if (state === 'running') {
      showMessage(null);
    } else if (state === 'failed') {
      showMessage('The backtest failed: ' + display(bt.error));
    } else if (state === 'interrupted') {
      showMessage('The backtest was interrupted (its process stopped before it finished): start it again.');
    } else if (state !== 'done') {
      showMessage('The backtest ended as ' + state + '.');
    } else {
      showMessage(null);
    }
    const report = state === 'done' && bt.report && typeof bt.report === 'object' ? bt.report : null;
    setHidden($('#backtest-report'), !report);
    if (report) renderReport(report, req);
  }

  function renderReport(r, req) {
    const compared = count(r.compared);
    const changed = count(r.changed);
    const skipped = count(r.skipped);
    setText($('#backtest-summary'), 'Compared ' + plural(compared, 'decision') + ': ' + changed + ' changed, ' +
      count(r.unchanged) + ' unchanged' +
      (skipped ? ', ' + skipped + ' skipped (their lead is gone or their input unreadable)' : '') + '.');

    const hooks = r.hooks && typeof r.hooks === 'object' ? r.hooks : {};
    const names = HOOKS.filter((h) => hooks[h]).concat(Object.keys(hooks).filter((h) => !HOOKS.includes(h)));
    let checked = 0;
    let reproduced = 0;
    for (const h of names) {
      checked += count(hooks[h].checked);
      reproduced += count(hooks[h].reproduced);
    }
    setText($('#backtest-fidelity'), checked === 0
      ? 'No recorded decision to check the replay against.'
      : 'Replaying the runs\u2019 own versions reproduced ' + reproduced + ' of ' + plural(checked, 'recorded decision') +
        (reproduced < checked ? ': the inputs of the rest changed since (a lead edited), their comparison is approximate.' : '.'));
    setText($('#backtest-truncated'), r.truncated
      ? 'The range held more decisions than the limit: only the ' + display(req.limit) + ' most recent were replayed.'
      : '');
    setHidden($('#backtest-truncated'), !r.truncated);

    rows($('#backtest-hooks tbody'), names.map((h) => ({ key: h, hook: h, t: hooks[h] })),
      ['Hook', 'Compared', 'Changed', 'Unchanged', 'Errors', 'Reproduced'],
      (tr, cells, { hook, t }) => {
        setAttr(tr, 'data-hook', hook);
        setAttr(tr, 'data-changed', count(t.changed) > 0 ? 'true' : 'false');
        const values = [hook, count(t.compared), count(t.changed), count(t.unchanged), count(t.errors),
          count(t.checked) ? count(t.reproduced) + ' / ' + count(t.checked) : '—'];
        values.forEach((v, i) => setText(cells[i], v));
      });

    const routing = r.routing && typeof r.routing === 'object' ? r.routing : {};
    const moves = [
      ['no_longer_called', 'No longer called'],
      ['newly_called', 'Newly called'],
      ['another_time', 'Called at another time'],
      ['another_agent', 'By another agent'],
      ['another_objective', 'For another objective'],
    ];
    syncChildren($('#backtest-routing'), moves, ([k]) => k,
      () => el('div', {}, el('dt'), el('dd')),
      (div, [k, label]) => {
        setText(div.firstChild, label);
        setText(div.lastChild, hooks.route ? count(routing[k]) : '— (route not replayed)');
      });

    const scoring = r.scoring && typeof r.scoring === 'object' ? r.scoring : {};
    const tags = (Array.isArray(scoring.tags) ? scoring.tags : []).filter((m) => m && typeof m === 'object');
    // Every tag pair, unchanged ones included; the moves are highlighted.
    rows($('#backtest-tags tbody'), tags.map((m) => ({ key: JSON.stringify([m.from, m.to]), m })),
      ['Before → after', 'Decisions'],
      (tr, cells, { m }) => {
        const moved = String(m.from) !== String(m.to);
        setAttr(tr, 'data-from', String(m.from));
        setAttr(tr, 'data-to', String(m.to));
        setAttr(tr, 'data-changed', moved ? 'true' : 'false');
        if (tr.classList.contains('changed') !== moved) tr.classList.toggle('changed', moved);
        setText(cells[0], display(m.from) + ' → ' + display(m.to));
        setText(cells[1], count(m.count));
      });
    shown('#backtest-tags', tags.length > 0);
    histogram($('#backtest-histogram'), buckets(scoring.before), buckets(scoring.after));

    const followUps = (Array.isArray(r.follow_ups) ? r.follow_ups : []).filter((m) => m && typeof m === 'object');
    syncChildren($('#backtest-follow-ups'), followUps, (m) => JSON.stringify([m.from, m.to]),
      () => el('li'),
      (li, m) => setText(li, display(m.from) + ' → ' + display(m.to) + ': ' + count(m.count)));
    setHidden($('#backtest-follow-ups-empty'), followUps.length > 0);

    const errors = (Array.isArray(r.errors) ? r.errors : []).filter((e) => e && typeof e === 'object');
    rows($('#backtest-errors tbody'), errors.map((e, i) => ({ key: String(i) + ':' + e.hook + ':' + e.message, e })),
      ['Hook', 'Error', 'Times', 'First run'],
      (tr, cells, { e }) => {
        setAttr(tr, 'data-hook', String(e.hook));
        setText(cells[0], display(e.hook));
        setText(cells[1], display(e.message));
        setText(cells[2], count(e.count));
        runLink(cells[3], e.run_id);
      });
    shown('#backtest-errors', errors.length > 0);

    const samples = (Array.isArray(r.samples) ? r.samples : []).filter((s) => s && typeof s === 'object');
    rows($('#backtest-samples tbody'), samples.map((s, i) => ({ key: String(i) + ':' + s.run_id + ':' + s.hook, s })),
      ['Hook', 'Decided', 'Before → after', 'Run'],
      (tr, cells, { s }) => {
        setAttr(tr, 'data-run-id', String(s.run_id));
        setAttr(tr, 'data-hook', String(s.hook));
        setText(cells[0], display(s.hook));
        let time = cells[1].firstElementChild;
        if (!time) { time = el('time'); cells[1].append(time); }
        setText(time, absolute(s.decided_at));
        setAttr(time, 'datetime', s.decided_at || null);
        setAttr(time, 'title', s.decided_at || null);
        change(cells[2], s);
        runLink(cells[3], s.run_id, s.lead_id);
      });
    shown('#backtest-samples', samples.length > 0);
    setText($('#backtest-samples-note'), samples.length < changed
      ? '(the newest ' + samples.length + ' of ' + changed + ')'
      : '');
  }

  /** Shows table `id` when it has rows, its "none" line otherwise. */
  function shown(id, any) {
    setHidden($(id).parentNode, !any);
    setHidden($(id + '-empty'), any);
  }

  /** Keyed table rows, one <td> per column, each labelled for the phone layout. */
  function rows(tbody, items, labels, update) {
    syncChildren(tbody, items, (i) => i.key,
      () => el('tr', {}, ...labels.map((label) => el('td', { 'data-label': label }))),
      (tr, item) => update(tr, tr.children, item));
  }

  /** A link to run `id`, as the runs list links to it. */
  function runLink(cell, id, leadId) {
    let a = cell.firstElementChild;
    if (!a) { a = el('a', { class: 'run-link' }); cell.append(a); }
    setAttr(a, 'href', id ? runHref(id) : null);
    setAttr(a, 'title', leadId ? 'lead ' + String(leadId) : null);
    setText(a, display(id));
  }

  function buckets(values) {
    const list = Array.isArray(values) ? values : [];
    return BUCKETS.map((_, i) => count(list[i]));
  }

  /** Ten buckets, two bars each (before, after), every bar with its count as text. */
  function histogram(node, before, after) {
    const max = Math.max(1, ...before, ...after);
    syncChildren(node, BUCKETS.map((label, i) => ({ label, i })), (b) => String(b.i),
      () => {
        const bar = (which) => el('span', { class: 'hist-col hist-' + which },
          el('span', { class: 'hist-value' }), el('span', { class: 'hist-bar' }));
        return el('div', { class: 'hist-bucket' },
          el('div', { class: 'hist-bars' }, bar('before'), bar('after')),
          el('span', { class: 'hist-label' }));
      },
      (div, { label, i }) => {
        const [b, a] = div.firstChild.children;
        setAttr(div, 'data-bucket', String(i));
        setAttr(div, 'data-before', String(before[i]));
        setAttr(div, 'data-after', String(after[i]));
        setAttr(div, 'title', label + ': ' + before[i] + ' before, ' + after[i] + ' after');
        setAttr(div, 'data-changed', before[i] !== after[i] ? 'true' : 'false');
        for (const [col, n] of [[b, before[i]], [a, after[i]]]) {
          setText(col.firstChild, n);
          // Heights through the CSSOM (the page's content-security-policy allows no inline style).
          col.lastChild.style.height = (HISTOGRAM_REM * n / max).toFixed(3) + 'rem';
        }
        setText(div.lastChild, label);
      });
    setAttr(node, 'aria-label', 'Scores before and after, in buckets of ten: ' +
      BUCKETS.map((label, i) => label + ' ' + before[i] + ' → ' + after[i]).join(', '));
  }

  /** What a changed decision was and became, compactly; the whole of both in the title. */
  function change(cell, s) {
    if (!cell.firstElementChild) {
      cell.append(el('span', { class: 'bt-before' }), ' → ', el('span', { class: 'bt-after' }),
        el('span', { class: 'bt-error script-errors' }));
    }
    const [before, after, error] = cell.children;
    const [b, a] = describe(String(s.hook), s.before, s.after);
    setText(before, b);
    setText(after, a);
    setText(error, s.error ? ' (raised: ' + s.error + ')' : '');
    setAttr(cell, 'title', 'before: ' + display(s.before) + '\nafter: ' + display(s.after));
  }

  function describe(hook, before, after) {
    const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : null);
    const b = obj(before);
    const a = obj(after);
    if (!b || !a) return [display(before), display(after)];
    if (hook === 'score') return [display(b.value) + ' ' + display(b.tag), display(a.value) + ' ' + display(a.tag)];
    if (hook === 'route') return [route(b), route(a)];
    if (hook === 'follow_up' || hook === 'on_no_answer') return [followUp(b), followUp(a)];
    // Anything else (the call context): the fields that differ.
    const keys = Object.keys(b).concat(Object.keys(a).filter((k) => !(k in b)))
      .filter((k) => display(b[k]) !== display(a[k]));
    const short = (v) => { const t = display(v); return t.length > 60 ? t.slice(0, 60) + '…' : t; };
    return [keys.map((k) => k + ': ' + short(b[k])).join('; '), keys.map((k) => k + ': ' + short(a[k])).join('; ')];
  }

  function route(d) {
    const action = d.action && typeof d.action === 'object' ? d.action : {};
    let when = display(action.type);
    if (action.type === 'call_now') when = 'call now';
    else if (action.type === 'call_after') when = 'call in ' + seconds(action.secs);
    else if (action.type === 'never') return 'never (' + display(action.reason) + ')';
    return when + ' · ' + display(d.agent) + ' · ' + display(d.objective);
  }

  function followUp(d) {
    switch (d.type) {
      case 'call_again': return 'call again in ' + seconds(d.after_secs);
      case 'hand_off': return 'hand off (' + display(d.reason) + ')';
      case 'stop': return 'stop: ' + display(d.outcome);
      case 'opt_out': return 'opt out (' + display(d.reason) + ')';
      default: return display(d);
    }
  }

  function seconds(value) {
    const s = count(value);
    if (s % 86400 === 0 && s > 0) return s / 86400 + ' d';
    if (s % 3600 === 0 && s > 0) return s / 3600 + ' h';
    if (s % 60 === 0 && s > 0) return s / 60 + ' min';
    return s + ' s';
  }

  button.addEventListener('click', start);
}
