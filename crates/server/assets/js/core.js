// orch dashboard: plain script, no build step, no dependencies.
// Everything comes from the JSON API; every value is put into the page as
// text (textContent), never as HTML, except artefacts the server has already
// rendered and defused. Changes send X-Orch-Csrf so the session cookie alone
// can never be used by another site (see crates/server/src/auth.rs).
'use strict';

const TERMINAL = ['done', 'cancelled', 'failed'];
const $ = (sel) => document.querySelector(sel);

const state = {
  tasks: new Map(), // id -> card
  totals: null,
  repos: [],
  stages: [],
  events: null, // the board's EventSource
  taskId: null, // the task page shown, if any
  log: null, // { es, run }
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
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

function duration(ms) {
  if (ms == null) return '';
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
}

function money(x) {
  return `$${(x || 0).toFixed(2)}`;
}

function show(section) {
  for (const id of ['login', 'board', 'task']) $(`#${id}`).hidden = id !== section;
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
    loadBoard();
    if (state.taskId) loadTask();
  });
  es.addEventListener('task', (e) => {
    const card = JSON.parse(e.data);
    state.tasks.set(card.id, card);
    if (!state.taskId) renderColumns(card.id);
    if (state.taskId && String(card.id) === String(state.taskId)) scheduleTaskReload();
  });
  es.addEventListener('totals', (e) => {
    state.totals = JSON.parse(e.data);
    if (!state.taskId) renderTotals();
  });
  es.addEventListener('resync', () => loadBoard());
  es.onerror = () => setLive(false);
}

function closeEvents() {
  if (state.events) state.events.close();
  state.events = null;
  setLive(false);
}

function setLive(on) {
  const l = $('#live');
  l.textContent = on ? 'live' : 'reconnecting…';
  l.className = `live ${on ? 'on' : 'off'}`;
}

// ---- board -----------------------------------------------------------------

async function loadBoard() {
  try {
    const b = await api('/api/board');
    state.tasks = new Map(b.tasks.map((t) => [t.id, t]));
    state.totals = b.totals;
    state.repos = b.repos;
    state.stages = b.stages;
    fillFilters();
    if (!state.taskId) {
      renderTotals();
      renderColumns();
    }
  } catch (err) {
    console.warn('board', err);
  }
}

function fillFilters() {
  const fill = (sel, values) => {
    const cur = sel.value;
    sel.replaceChildren(el('option', { value: '', text: 'all' }));
    for (const v of values) sel.append(el('option', { value: v, text: v }));
    sel.value = values.includes(cur) ? cur : '';
  };
  fill($('#f-repo'), state.repos);
  fill($('#f-stage'), state.stages);
}

for (const id of ['#f-repo', '#f-stage', '#f-terminal']) {
  $(id).addEventListener('change', () => renderColumns());
}

function renderTotals() {
  const t = state.totals;
  if (!t) return;
  const box = (label, value) => el('span', { class: 'box' }, el('b', { text: String(value) }), ` ${label}`);
  const boxes = [];
  for (const [stage, n] of Object.entries(t.by_stage)) if (n > 0) boxes.push(box(stage, n));
  boxes.push(box('running now', t.running));
  boxes.push(box('runs today', t.runs_today));
  for (const r of t.repos) {
    const tokens = r.usage.input_tokens + r.usage.output_tokens;
    boxes.push(box(`${r.repo}: ${r.runs} runs, ${tokens} tokens, ${money(r.usage.cost_usd)}`, ''));
  }
  const totals = $('#totals');
  totals.replaceChildren(...boxes);
  totals.dataset.runsToday = t.runs_today;
}

function renderColumns(flashId) {
  const repo = $('#f-repo').value;
  const stageFilter = $('#f-stage').value;
  const terminal = $('#f-terminal').checked || TERMINAL.includes(stageFilter);
  const stages = state.stages.filter((s) => (stageFilter ? s === stageFilter : terminal || !TERMINAL.includes(s)));
  const cols = stages.map((stage) => {
    const cards = [...state.tasks.values()]
      .filter((t) => t.stage === stage && (!repo || t.repo === repo))
      .sort((a, b) => b.updated_at - a.updated_at)
      .map((t) => {
        const c = el('a', { class: 'card', href: `#/task/${t.id}`, 'data-task': t.id, 'data-stage': t.stage },
          el('div', { class: 'key', text: `${t.key} · ${t.repo}` }),
          el('div', { text: t.title }));
        if (t.running) c.append(el('div', { class: 'run', text: `▶ ${t.running} running` }));
        if (t.cancel_requested && !TERMINAL.includes(t.stage)) c.append(el('div', { class: 'error', text: 'STOP pending' }));
        if (t.id === flashId) c.classList.add('flash');
        return c;
      });
    return el('div', { class: 'column', 'data-stage': stage }, el('h3', { text: `${stage} (${cards.length})` }), ...cards);
  });
  $('#columns').replaceChildren(...cols);
}

// ---- task page ---------------------------------------------------------------

function scheduleTaskReload() {
  clearTimeout(state.detailTimer);
  state.detailTimer = setTimeout(loadTask, 150);
}

async function loadTask() {
  const id = state.taskId;
  if (!id) return;
  let d;
  try {
    d = await api(`/api/tasks/${encodeURIComponent(id)}`);
  } catch (err) {
    $('#t-result').textContent = err.message;
    return;
  }
  if (state.taskId !== id) return;
  const t = d.task;
  $('#t-title').textContent = t.title;
  $('#t-key').textContent = t.work_item_id;
  $('#t-repo').textContent = t.repo;
  $('#t-stage').textContent = t.stage;
  const running = d.jobs.find((j) => j.status === 'running');
  $('#t-running').textContent = running ? `· ${running.agent} running` : '';
  renderGates(t.stage);
  renderTimeline(d.events);
  renderRuns(d.runs, d.usage);
  renderArchives(d.archives || [], t.id);
  const current = latestRun(d.runs);
  if (current && (!state.log || state.log.run !== current.run_id)) openLog(id, current.run_id, current.agent);
  if (!current && !state.log) $('#log-state').textContent = 'No agent has run yet.';
  loadDiff(id);
  loadArtefacts(id);
}

function latestRun(runs) {
  let best = null;
  for (const r of runs) {
    if (!best || r.started_at > best.started_at || (r.started_at === best.started_at && r.attempt > best.attempt)) best = r;
  }
  return best;
}

function renderGates(stage) {
  const allowed = {
    // On a done or failed task, Start runs its item again as a new task.
    start: ['backlog', 'done', 'failed'],
    approve: ['awaiting_approval'],
    reject: ['awaiting_approval'],
    'confirm-deploy': ['deploy'],
    retry: ['needs_attention', 'failed'],
    stop: null, // any live stage
  };
  for (const b of document.querySelectorAll('.gates button')) {
    const a = b.dataset.action;
    const ok = allowed[a] ? allowed[a].includes(stage) : !TERMINAL.includes(stage);
    // A gate that does not apply stays clickable only where the server may
    // still accept it (start of a STOPped item); otherwise it is disabled.
    b.disabled = !(ok || (a === 'start' && stage === 'cancelled'));
  }
}

function renderTimeline(events) {
  const items = events.map((e) => {
    const move = e.from_stage && e.to_stage && e.from_stage !== e.to_stage ? ` ${e.from_stage} → ${e.to_stage}` : '';
    return el('li', {},
      el('div', { class: 'when', text: `${when(e.at)} · ${e.actor}` }),
      el('b', { text: e.kind }), move,
      e.message ? el('div', { text: e.message }) : '');
  });
  $('#timeline').replaceChildren(...items);
}

function renderRuns(runs, usage) {
  const rows = runs.map((r) => el('tr', {},
    el('td', { text: r.agent }),
    el('td', { text: String(r.attempt) }),
    el('td', { text: when(r.started_at) }),
    el('td', { text: r.finished_at ? duration(r.finished_at - r.started_at) : `${duration(Date.now() - r.started_at)} …` }),
    el('td', { text: r.outcome || 'running' }),
    el('td', { text: String(r.usage.input_tokens + r.usage.output_tokens) }),
    el('td', { text: money(r.usage.cost_usd) })));
  $('#runs tbody').replaceChildren(...rows);
  $('#usage').textContent = `Total: ${usage.input_tokens} tokens in, ${usage.output_tokens} out, ${money(usage.cost_usd)}`;
}

// Saved states of the task's worktree: each with the files it changed and the
// command that makes a branch from it.
function renderArchives(archives, taskId) {
  const items = archives.map((a) => {
    const files = a.files.length ? a.files.join(', ') + (a.files_cut ? ', …' : '') : 'no changes against the base';
    return el('div', { class: 'archive' },
      el('h4', { text: `#${a.number} · ${when(a.created_at)}${a.had_uncommitted ? ' · with uncommitted work' : ''}` }),
      el('div', { class: 'small', text: `${a.ref_name} (${a.commit.slice(0, 12)})` }),
      el('div', { text: files }),
      el('code', { class: 'small', text: `orch task restore ${taskId} ${a.number}` }));
  });
  if (!items.length) items.push(el('p', { class: 'small', text: 'No archives: the worktree was never removed.' }));
  $('#archives').replaceChildren(...items);
}

async function loadDiff(id) {
  try {
    const text = await api(`/api/tasks/${encodeURIComponent(id)}/diff`);
    if (state.taskId === id) $('#diff').textContent = text;
  } catch (err) {
    if (state.taskId === id) $('#diff').textContent = err.message;
  }
}

async function loadArtefacts(id) {
  let list = [];
  try {
    list = await api(`/api/tasks/${encodeURIComponent(id)}/artefacts`);
  } catch (err) {
    list = [];
  }
  if (state.taskId !== id) return;
  const boxes = list.map((a) => {
    const body = el('div');
    body.innerHTML = a.html; // rendered and defused by the server (changes.rs)
    return el('div', { class: 'artefact' }, el('h4', { text: a.path }), body);
  });
  if (!boxes.length) boxes.push(el('p', { class: 'small', text: 'No artefacts yet.' }));
  $('#artefacts').replaceChildren(...boxes);
}

// The log pane follows the current run. EventSource reconnects by itself and
// sends Last-Event-ID, so the server resumes after the last line we got.
// When the next run of the same task starts, the previous run's lines stay
// above a separator: its last words (often the most useful) remain readable.
function openLog(id, run, agent) {
  const sameTask = state.log && state.log.task === id;
  closeLog();
  const pane = $('#log');
  if (sameTask && pane.textContent) {
    pane.append(document.createTextNode(`──── ${agent || 'next'} run ────\n`));
  } else {
    pane.textContent = '';
  }
  $('#log-state').textContent = 'streaming…';
  const es = new EventSource(`/api/tasks/${encodeURIComponent(id)}/logs`);
  state.log = { es, run, task: id };
  es.onmessage = (e) => {
    pane.append(document.createTextNode(`${e.data}\n`));
    // Follow the tail unless the person unticked "follow" to read back.
    if ($('#follow').checked) pane.scrollTop = pane.scrollHeight;
  };
  es.addEventListener('end', () => {
    es.close();
    $('#log-state').textContent = 'the run has ended';
  });
  es.addEventListener('error', (e) => {
    if (e.data) pane.append(document.createTextNode(`[error] ${e.data}\n`));
    else if (es.readyState !== EventSource.CLOSED) $('#log-state').textContent = 'reconnecting…';
  });
  es.onopen = () => { $('#log-state').textContent = 'streaming…'; };
}

function closeLog() {
  if (state.log) state.log.es.close();
  state.log = null;
}

async function act(action, comment) {
  const id = state.taskId;
  const out = $('#t-result');
  out.className = 'result';
  out.textContent = `${action}…`;
  try {
    const body = comment ? { comment } : undefined;
    const r = await api(`/api/tasks/${encodeURIComponent(id)}/${action}`, { method: 'POST', body });
    out.textContent = `${action}: ${r.note || 'ok'}${r.stage ? ` (stage ${r.stage})` : ''}`;
  } catch (err) {
    out.className = 'result error';
    out.textContent = `${action} refused: ${err.message}`;
  }
  loadTask();
}

for (const b of document.querySelectorAll('.gates button')) {
  b.addEventListener('click', () => {
    const a = b.dataset.action;
    if (a === 'reject') {
      $('#reject-form').hidden = false;
      $('#reject-comment').focus();
      return;
    }
    if (a === 'stop' && !window.confirm('STOP this task? Its agent is stopped and the task is cancelled.')) return;
    act(a);
  });
}

$('#reject-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const comment = $('#reject-comment').value.trim();
  if (!comment) return;
  $('#reject-form').hidden = true;
  $('#reject-comment').value = '';
  act('reject', comment);
});
$('#reject-cancel').addEventListener('click', () => { $('#reject-form').hidden = true; });

// ---- routing -----------------------------------------------------------------

function route() {
  const m = location.hash.match(/^#\/task\/(.+)$/);
  const id = m ? decodeURIComponent(m[1]) : null;
  if (id !== state.taskId) closeLog();
  state.taskId = id;
  if (id) {
    show('task');
    for (const sel of ['#t-title', '#t-key', '#t-repo', '#t-stage', '#t-running', '#t-result', '#diff', '#log', '#log-state']) $(sel).textContent = '';
    $('#reject-form').hidden = true;
    loadTask();
  } else {
    show('board');
    renderTotals();
    renderColumns();
  }
}

window.addEventListener('hashchange', () => {
  if (state.events) route();
});

start().catch((err) => {
  show('login');
  $('#login-error').textContent = err.message;
});
