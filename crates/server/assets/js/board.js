// ---- board -----------------------------------------------------------------
// Columns of cards, one per stage. A full render happens on load and when a
// filter changes; a live change patches the one card it is about (and the
// counts of the columns it left and joined), so 1,000 cards stay smooth.
// The filters live in the URL (#/board?repo=&stage=&q=&all=1): a view can
// be bookmarked and shared, and Back restores it.

async function loadBoard() {
  try {
    const b = await api('/api/board');
    state.tasks = new Map(b.tasks.map((t) => [t.id, t]));
    state.totals = b.totals;
    state.repos = b.repos;
    state.stages = b.stages;
    state.stageNames = b.stage_names || {};
    fillFilters();
    if (state.view === 'board') {
      renderTotals();
      renderColumns();
    }
  } catch (err) {
    console.warn('board', err);
  }
}

function filters() {
  const q = new URLSearchParams((location.hash.split('?')[1]) || '');
  return { repo: q.get('repo') || '', stage: q.get('stage') || '', text: q.get('q') || '', all: q.get('all') === '1' };
}

// Writes the form's filters into the URL without adding a history entry
// per keystroke; the hashchange then renders.
function filtersToUrl() {
  const q = new URLSearchParams();
  if ($('#f-repo').value) q.set('repo', $('#f-repo').value);
  if ($('#f-stage').value) q.set('stage', $('#f-stage').value);
  if ($('#f-text').value.trim()) q.set('q', $('#f-text').value.trim());
  if ($('#f-terminal').checked) q.set('all', '1');
  const s = q.toString();
  history.replaceState(null, '', `#/board${s ? `?${s}` : ''}`);
  renderColumns();
}

function fillFilters() {
  const f = filters();
  const fill = (sel, values, label, cur) => {
    sel.replaceChildren(el('option', { value: '', text: 'all' }));
    for (const v of values) sel.append(el('option', { value: v, text: label(v) }));
    sel.value = values.includes(cur) ? cur : '';
  };
  fill($('#f-repo'), state.repos, (v) => v, f.repo);
  fill($('#f-stage'), state.stages, stageName, f.stage);
  $('#f-text').value = f.text;
  $('#f-terminal').checked = f.all;
}

for (const id of ['#f-repo', '#f-stage', '#f-terminal']) $(id).addEventListener('change', filtersToUrl);
$('#f-text').addEventListener('input', filtersToUrl);
$('#filters').addEventListener('submit', (e) => e.preventDefault());

function renderTotals() {
  const t = state.totals;
  if (!t) return;
  const box = (label, value) => el('span', { class: 'box' }, el('b', { text: String(value) }), ` ${label}`);
  const boxes = [];
  boxes.push(box('running now', t.running));
  boxes.push(box('runs today', t.runs_today));
  for (const r of t.repos) {
    const n = r.usage.input_tokens + r.usage.output_tokens;
    boxes.push(box(`${r.repo}: ${r.runs} runs, ${tokens(n)} tokens, ${money(r.usage.cost_usd)}`, ''));
  }
  for (const d of t.disk || []) {
    boxes.push(box(`${d.repo}: ${d.size} in ${d.worktrees} worktree${d.worktrees === 1 ? '' : 's'}`, ''));
  }
  const totals = $('#totals');
  totals.replaceChildren(...boxes);
  totals.dataset.runsToday = t.runs_today;
}

function shownStages() {
  const f = filters();
  const terminal = f.all || TERMINAL.includes(f.stage);
  return state.stages.filter((s) => (f.stage ? s === f.stage : terminal || !TERMINAL.includes(s)));
}

function matches(t, f = filters()) {
  if (f.repo && t.repo !== f.repo) return false;
  if (f.text) {
    const q = f.text.toLowerCase();
    if (!`${t.key} ${t.title}`.toLowerCase().includes(q)) return false;
  }
  return true;
}

const byRecent = (a, b) => b.updated_at - a.updated_at;

function renderColumns() {
  const f = filters();
  const byStage = new Map(shownStages().map((s) => [s, []]));
  for (const t of state.tasks.values()) {
    if (byStage.has(t.stage) && matches(t, f)) byStage.get(t.stage).push(t);
  }
  const cols = [...byStage].map(([stage, tasks]) => {
    tasks.sort(byRecent);
    const list = el('div', { class: 'cards' }, ...tasks.map(cardEl));
    return el('section', { class: 'column', 'data-stage': stage, 'aria-label': stageName(stage) },
      el('h2', {}, stageName(stage), ' ', el('span', { class: 'n', text: String(tasks.length) })),
      list);
  });
  $('#columns').replaceChildren(...cols);
}

function cardEl(t) {
  const c = el('a', { class: 'card', href: `#/task/${t.id}`, 'data-task': t.id, 'data-stage': t.stage },
    el('div', { class: 'key', text: `${t.key} · ${t.repo}` }),
    el('div', { class: 'title', text: t.title }));
  const r = t.run;
  if (r) {
    c.classList.add('is-running');
    c.append(el('div', { class: 'run' },
      el('span', { class: 'agent', text: `▶ ${r.agent}` }),
      ` · attempt ${r.attempt}/${r.max_attempts} · `,
      since(r.started_at)));
    if (r.last_line) c.append(el('div', { class: 'last', text: r.last_line }));
  } else if (t.running) {
    c.append(el('div', { class: 'run', text: `▶ ${t.running}` }));
  }
  if (t.tokens || t.cost_usd) c.append(el('div', { class: 'usage', text: `${tokens(t.tokens)} tokens · ${money(t.cost_usd)}` }));
  if (t.blocked && !TERMINAL.includes(t.stage)) {
    c.classList.add('is-blocked');
    c.append(el('div', { class: `mark blocked ${t.blocked.kind}` }, el('b', { text: 'Blocked: ' }), t.blocked.detail));
  }
  if (t.parked) {
    c.classList.add('is-parked');
    c.append(el('div', { class: 'mark parked' }, el('b', { text: 'Parked: ' }), t.parked));
  }
  if (t.cancel_requested && !TERMINAL.includes(t.stage)) {
    c.append(el('div', { class: 'mark stop', text: 'STOP requested: waits for the current merge or deploy step' }));
  }
  return c;
}

// One card changed: replace it where it is, or move it to its new column.
function patchCard(t) {
  const old = $(`#columns .card[data-task="${t.id}"]`);
  const col = $(`#columns .column[data-stage="${t.stage}"] .cards`);
  const show = col && matches(t);
  const fresh = show ? cardEl(t) : null;
  if (fresh) fresh.classList.add('flash');
  const focused = old && document.activeElement === old;
  if (old && fresh && old.parentElement === col) {
    old.replaceWith(fresh);
  } else {
    if (old) {
      const from = old.closest('.column');
      old.remove();
      recount(from);
    }
    if (fresh) {
      // Newest first: before the first card updated earlier than this one.
      const next = [...col.children].find((c) => (state.tasks.get(Number(c.dataset.task))?.updated_at || 0) <= t.updated_at);
      col.insertBefore(fresh, next || null);
      recount(col.closest('.column'));
    }
  }
  if (focused && fresh) fresh.focus();
}

function recount(column) {
  if (column) column.querySelector('h2 .n').textContent = String(column.querySelectorAll('.card').length);
}
