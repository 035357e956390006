// Switchboard operator dashboard: the businesses pages, "/businesses" (the list) and
// "/businesses/{id}" (one business: its facts, configuration and do-not-call forms, its script
// highlighted, validate and dry run; the backtest view is in backtest.js). Safety rule: see
// core.js.

import {
  $, el, setText, setAttr, setHidden, syncChildren, display, pretty, absolute, api,
  setError, clearError, setLive,
} from './core.js';
import { renderCode } from './code.js';
import { initBacktest } from './backtest.js';

function businessHref(id) {
  return '/businesses/' + encodeURIComponent(String(id));
}

// "/businesses": every business the caller may see, each linking to its page.
export async function initBusinessesView() {
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

// "/businesses/{id}": one business' facts, its forms, its script and the script editor.
export async function initBusinessView(id) {
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
  initBacktest(base, editor);
  setLive('done', 'Loaded');
}
