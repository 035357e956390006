// Switchboard operator dashboard: the sign-in page (shown on any path when there is no
// session) and signing out. Safety rule: see core.js.

import { $, setText, setHidden, api, session, setError } from './core.js';

// Every page needs a session: a key is traded for an HttpOnly cookie (POST /sessions), and
// GET /sessions/current gives the CSRF token that actions send back. The form is shown by
// showSignIn (core.js) when the API answers 401.

export function initSignIn() {
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
export async function startSession() {
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
