// orch dashboard: plain scripts, no build step, no dependencies. The files
// of assets/js/ are served joined as /assets/app.js (dashboard.rs), in the
// order core, inbox, board, task, main, and share one scope.
//
// Everything comes from the JSON API; every value is put into the page as
// text (textContent), never as HTML, except artefacts the server has already
// rendered and defused. Changes send X-Orch-Csrf so the session cookie alone
// can never be used by another site (see crates/server/src/auth.rs).
'use strict';

const TERMINAL = ['done', 'cancelled', 'failed'];
const $ = (sel) => document.querySelector(sel);

const state = {
  view: null, // 'inbox' | 'board' | 'task' | 'login'
  tasks: new Map(), // id -> card
  totals: null,
  repos: [],
  stages: [],
  stageNames: {},
  inbox: null, // { count, items }
  events: null, // the live EventSource
  taskId: null, // the task page shown, if any
  log: null, // { es, run, task }
  detailTimer: null,
};

// ---- HTTP ------------------------------------------------------------------

async function api(path, opts = {}) {
  const headers = { 'X-Orch-Csrf': '1' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method: opts.method || 'GET',
    headers,
    credentials: 'same-origin',
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  let data = text;
  if ((res.headers.get('content-type') || '').includes('json')) {
    try { data = JSON.parse(text); } catch (_) { /* keep text */ }
  }
  if (res.status === 401) showLogin();
  if (!res.ok) {
    const msg = data && data.error ? data.error : `${res.status} ${res.statusText}`;
    throw new Error(msg);
  }
  return data;
}

// ---- small helpers -----------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== '') e.append(c);
  return e;
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

function duration(ms) {
  if (ms == null) return '';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function money(x) {
  return `$${(x || 0).toFixed(2)}`;
}

function tokens(n) {
  if (!n) return '0';
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

// A stage as people know it: the tracker's state name, never the enum name.
function stageName(stage) {
  return state.stageNames[stage] || stage.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

// Elements whose text is "time since X": one timer updates them all in
// place every second, so elapsed times move without re-rendering anything.
function since(ms, prefix = '') {
  return el('span', { class: 'since', 'data-since': ms, 'data-prefix': prefix, text: prefix + duration(Date.now() - ms) });
}

setInterval(() => {
  const now = Date.now();
  for (const s of document.querySelectorAll('[data-since]')) {
    s.textContent = s.dataset.prefix + duration(now - Number(s.dataset.since));
  }
}, 1000);

function show(section) {
  state.view = section;
  for (const id of ['login', 'inbox', 'board', 'task']) $(`#${id}`).hidden = id !== section;
  for (const [sel, view] of [['#nav-inbox', 'inbox'], ['#nav-board', 'board']]) {
    if (section === view) $(sel).setAttribute('aria-current', 'page');
    else $(sel).removeAttribute('aria-current');
  }
}

// ---- login -----------------------------------------------------------------

function showLogin() {
  closeEvents();
  closeLog();
  $('#logout').hidden = true;
  show('login');
}

async function start() {
  const s = await api('/api/session');
  if (!s.authenticated && !s.read_open) return showLogin();
  $('#logout').hidden = !s.authenticated;
  openEvents();
  route();
}

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('#login-error').textContent = '';
  try {
    await api('/login', { method: 'POST', body: { token: $('#token').value } });
    $('#token').value = '';
    await start();
  } catch (err) {
    $('#login-error').textContent = err.message;
  }
});

$('#logout').addEventListener('click', async () => {
  await api('/logout', { method: 'POST' }).catch(() => {});
  showLogin();
});

// ---- live changes ------------------------------------------------------------

function openEvents() {
  if (state.events) return;
  const es = new EventSource('/api/events');
  state.events = es;
  // Fires on the first connection and on every reconnection: reload what
  // may have changed while we were away.
  es.addEventListener('hello', () => {
    setLive(true);
    loadConfigState();
    loadBoard();
    loadInbox();
    if (state.taskId) loadTask();
  });
  es.addEventListener('task', (e) => {
    const card = JSON.parse(e.data);
    state.tasks.set(card.id, card);
    if (state.view === 'board') patchCard(card);
    if (state.taskId && String(card.id) === String(state.taskId)) scheduleTaskReload();
  });
  es.addEventListener('totals', (e) => {
    state.totals = JSON.parse(e.data);
    if (state.view === 'board') renderTotals();
  });
  es.addEventListener('inbox', (e) => setInbox(JSON.parse(e.data)));
  es.addEventListener('config', (e) => showConfigState(JSON.parse(e.data)));
  es.addEventListener('resync', () => { loadBoard(); loadInbox(); });
  // EventSource reconnects by itself; until it does, say so.
  es.onerror = () => setLive(false);
}

function closeEvents() {
  if (state.events) state.events.close();
  state.events = null;
  setLive(false);
}

// The live configuration's state (GET /queue's `config`): a banner while
// an edit was not applied (orch keeps the last good configuration) or
// waits for a restart; nothing when all is well.
async function loadConfigState() {
  try {
    showConfigState((await api('/queue')).config || null);
  } catch (_) { /* the banner stays as it was */ }
}

function showConfigState(c) {
  const banner = $('#config-banner');
  const error = c && c.error;
  const restart = c && c.restart_needed && c.restart_needed.length ? c.restart_needed : null;
  banner.hidden = !error && !restart;
  banner.classList.toggle('restart', !error && !!restart);
  $('#config-text').textContent = error
    ? `the last edit was not applied; orch works with the last good one (generation ${c.generation}).`
    : restart ? `changed sections apply after a restart: ${restart.join(', ')}.` : '';
  $('#config-error').textContent = error || '';
}

function setLive(on) {
  const l = $('#live');
  l.textContent = on ? 'live' : 'reconnecting…';
  l.className = `live ${on ? 'on' : 'off'}`;
  document.body.classList.toggle('stale', !on);
}

// The inbox count shows in the page title, the favicon and the nav.
function setInboxCount(n) {
  document.title = n ? `(${n}) orch` : 'orch';
  $('#favicon').setAttribute('href', `/assets/favicon.svg?n=${n}`);
  const c = $('#inbox-count');
  c.textContent = String(n);
  c.classList.toggle('zero', !n);
}
