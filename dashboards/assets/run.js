// Switchboard operator dashboard: one run's page, "/runs/{id}" (its facts, the call, the
// pipeline, the timeline of steps; cancel, retry and resume). Safety rule: see core.js.

import {
  $, el, setText, setAttr, setHidden, setBadge, syncChildren, parseTime, display, pretty,
  duration, absolute, setTime, tickLive, api, setError, clearError, setLive, poller,
  followEvents,
} from './core.js';

const RUN_REFRESH_MS = 1000;
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const LEAD_CALL_STEPS = [
  'intake', 'build_context', 'route', 'place_call',
  'await_call', 'analyze', 'score', 'follow_up',
];

export function initRunView(id) {
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
