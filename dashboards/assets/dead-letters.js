// Switchboard operator dashboard: the dead letters page, "/dead-letters" (operators: webhooks
// whose processing failed, each with a replay button). Safety rule: see core.js.

import {
  $, el, setText, setHidden, syncChildren, display, absolute, api, setError, clearError,
  setLive,
} from './core.js';

// Dead letters (operators): each with its error, and a button to process it again.
export async function initDeadLettersView() {
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
