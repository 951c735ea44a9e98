// ---- task page ---------------------------------------------------------------
// Header with the gates, then the details in full-width tabs: artefacts
// (each file a tab of its own), the live log, runs, diff, timeline, archives.

const GATES = {
  // On a done or failed task, Start runs its item again as a new task.
  start: ['backlog', 'done', 'failed'],
  approve: ['awaiting_approval'],
  reject: ['awaiting_approval'],
  'confirm-deploy': ['deploy'],
  retry: ['needs_attention', 'failed'],
  stop: null, // any live stage
};

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
  const st = $('#t-stage');
  st.textContent = stageName(t.stage);
  st.dataset.stage = t.stage;
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
  for (const b of document.querySelectorAll('.gates button')) {
    const a = b.dataset.action;
    const ok = GATES[a] ? GATES[a].includes(stage) : !TERMINAL.includes(stage);
    // A gate that does not apply stays clickable only where the server may
    // still accept it (start of a STOPped item); otherwise it is hidden, so
    // the page offers what can be done now, not everything orch knows.
    const usable = ok || (a === 'start' && stage === 'cancelled');
    b.disabled = !usable;
    b.hidden = !usable;
  }
}

function renderTimeline(events) {
  const items = [...events].reverse().map((e) => {
    const move = e.from_stage && e.to_stage && e.from_stage !== e.to_stage ? ` ${stageName(e.from_stage)} → ${stageName(e.to_stage)}` : '';
    return el('li', {},
      el('div', { class: 'when', text: `${when(e.at)} · ${e.actor}` }),
      el('b', { text: e.kind.replace(/_/g, ' ') }), move,
      e.message ? el('div', { class: 'msg', text: e.message }) : '');
  });
  $('#timeline').replaceChildren(...items);
}

function renderRuns(runs, usage) {
  const rows = runs.map((r) => el('tr', {},
    el('td', { text: r.agent }),
    el('td', { text: String(r.attempt) }),
    el('td', { text: when(r.started_at) }),
    el('td', {}, r.finished_at ? duration(r.finished_at - r.started_at) : since(r.started_at)),
    el('td', { text: r.outcome || 'running' }),
    el('td', { text: tokens(r.usage.input_tokens + r.usage.output_tokens) }),
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
      el('h3', { text: `#${a.number} · ${when(a.created_at)}${a.had_uncommitted ? ' · with uncommitted work' : ''}` }),
      el('div', { class: 'small', text: `${a.ref_name} (${a.commit.slice(0, 12)})` }),
      el('div', { text: files }),
      el('code', { class: 'small', text: `orch task restore ${taskId} ${a.number}` }));
  });
  if (!items.length) items.push(el('p', { class: 'small', text: 'No archives: the worktree was never removed.' }));
  $('#archives').replaceChildren(...items);
}

async function loadDiff(id) {
  let text;
  try {
    text = await api(`/api/tasks/${encodeURIComponent(id)}/diff`);
  } catch (err) {
    text = err.message;
  }
  if (state.taskId === id) renderDiff(String(text));
}

// The diff as a list of its files, each a section that opens and closes
// (open at first while the diff is short); anything before the first file
// (a note from the server) is shown as it is. Files a person closed stay
// closed when the page reloads the diff.
function renderDiff(text) {
  const box = $('#diff');
  const closed = new Set([...box.querySelectorAll('details:not([open])')].map((d) => d.dataset.file));
  const parts = text.split(/^(?=diff --git )/m);
  const files = parts.filter((p) => p.startsWith('diff --git '));
  const head = parts.filter((p) => !p.startsWith('diff --git ')).join('');
  const out = [];
  if (head.trim()) out.push(el('pre', { class: 'diff-note', text: head }));
  if (files.length) out.push(el('p', { class: 'small', text: `${files.length} file${files.length === 1 ? '' : 's'} changed` }));
  for (const f of files) {
    const m = f.match(/^diff --git a\/(.+?) b\/(.+)$/m);
    const name = m ? m[2] : f.split('\n')[0];
    const added = (f.match(/^\+(?!\+\+ )/gm) || []).length;
    const removed = (f.match(/^-(?!-- )/gm) || []).length;
    const d = el('details', { 'data-file': name },
      el('summary', {}, el('code', { text: name }), el('span', { class: 'small', text: ` +${added} −${removed}` })),
      el('pre', { class: 'file', tabindex: '0', text: f }));
    d.open = !closed.has(name) && text.length < 200000;
    out.push(d);
  }
  box.replaceChildren(...out);
}

// Each artefact is a tab of its own, full width. Its HTML was rendered and
// defused by the server (changes.rs: raw HTML escaped, images dropped, only
// harmless links); the CSS contains it (code blocks scroll in their box).
async function loadArtefacts(id) {
  let list = [];
  try {
    list = await api(`/api/tasks/${encodeURIComponent(id)}/artefacts`);
  } catch (err) {
    list = [];
  }
  if (state.taskId !== id) return;
  const box = $('#artefacts');
  const chosen = box.querySelector('[role=tab][aria-selected=true]')?.dataset.path;
  if (!list.length) {
    box.replaceChildren(el('p', { class: 'small', text: 'No artefacts yet.' }));
    return;
  }
  const tabs = el('div', { class: 'tabs sub', role: 'tablist', 'aria-label': 'Artefacts' });
  const panels = [];
  list.forEach((a, i) => {
    const name = a.path.split('/').pop();
    const tab = el('button', { role: 'tab', id: `art-tab-${i}`, 'aria-controls': `art-${i}`, 'data-path': a.path, text: name, title: a.path });
    tabs.append(tab);
    const body = el('div', { class: 'md' });
    body.innerHTML = a.html;
    // Code blocks and tables scroll inside their box; a keyboard must reach them too.
    for (const s of body.querySelectorAll('pre, table')) s.tabIndex = 0;
    panels.push(el('article', { role: 'tabpanel', id: `art-${i}`, class: 'artefact', 'aria-labelledby': `art-tab-${i}`, tabindex: '0' },
      el('p', { class: 'path', text: a.path }), body));
  });
  box.replaceChildren(tabs, ...panels);
  const index = Math.max(0, list.findIndex((a) => a.path === chosen));
  selectTab(tabs, tabs.children[index], false);
}

// WAI-ARIA tabs: one tab stop, arrows move between tabs, panels follow.
function selectTab(tablist, tab, focus = true) {
  for (const t of tablist.querySelectorAll('[role=tab]')) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    const panel = document.getElementById(t.getAttribute('aria-controls'));
    if (panel) panel.hidden = !on;
  }
  if (focus) tab.focus();
  if (tablist.id === 't-tabs' && tab.dataset.tab === 'log') followTail();
}

document.addEventListener('click', (e) => {
  const tab = e.target.closest('[role=tab]');
  if (tab) selectTab(tab.closest('[role=tablist]'), tab);
});

document.addEventListener('keydown', (e) => {
  const tab = e.target.closest && e.target.closest('[role=tab]');
  if (!tab) return;
  const tabs = [...tab.closest('[role=tablist]').querySelectorAll('[role=tab]')];
  const i = tabs.indexOf(tab);
  const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  selectTab(tab.closest('[role=tablist]'), tabs[(to + tabs.length) % tabs.length]);
});

function followTail() {
  const pane = $('#log');
  if ($('#follow').checked) pane.scrollTop = pane.scrollHeight;
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
    followTail();
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
    out.textContent = `${action}: ${r.note || 'ok'}${r.stage ? ` (stage ${stageName(r.stage)})` : ''}`;
  } catch (err) {
    out.className = 'result error';
    out.textContent = `${action} refused: ${err.message}`;
  }
  loadTask();
  loadInbox();
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
