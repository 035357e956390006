// Switchboard operator dashboard: script highlighting (no page of its own), for the business
// page's script and the lines an invalid script is refused on. Safety rule: see core.js.

import { el } from './core.js';

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
export function renderCode(pre, source, marks) {
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
