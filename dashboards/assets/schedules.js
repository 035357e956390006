// Switchboard operator dashboard: the schedules page, "/schedules" (each business' cron
// campaigns, paused and resumed from there). Safety rule: see core.js.

import {
  $, el, setText, setHidden, syncChildren, display, absolute, api, setError, clearError,
  setLive, poller,
} from './core.js';

// Schedules: each business' cron campaigns, with their next and last ticks and a button to
// pause or resume each.
export async function initSchedulesView() {
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
