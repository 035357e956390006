// Switchboard operator dashboard: startup and the router (no page of its own). Signs in, then
// shows the page for location.pathname. index.html loads this module, which imports the rest;
// each page lives in its own file:
//
//   /                    runs.js           /runs/{id}      run.js
//   /overview            overview.js       /schedules      schedules.js
//   /businesses[/{id}]   businesses.js     /dead-letters   dead-letters.js
//   sign-in, sign-out    session.js
//
// The business page's backtest view is backtest.js, its script highlighting code.js; what every
// page shares (DOM helpers, formatting, api(), errors, polling) is core.js.
//
// Safety rule: see core.js.

import { $, clearErrors } from './core.js';
import { initSignIn, startSession } from './session.js';
import { initRunsView } from './runs.js';
import { initRunView } from './run.js';
import { initOverviewView } from './overview.js';
import { initBusinessesView, initBusinessView } from './businesses.js';
import { initSchedulesView } from './schedules.js';
import { initDeadLettersView } from './dead-letters.js';

async function start() {
  initSignIn();
  if (!(await startSession())) return;
  $('#error-dismiss').addEventListener('click', clearErrors);

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
  }
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
