// ---- routing and keys ----------------------------------------------------------
//   #/ (or #/inbox)   the "needs you" inbox, the landing view
//   #/board?…         the board with its filters
//   #/task/<id>       a task

function route() {
  const hash = location.hash.split('?')[0];
  const m = hash.match(/^#\/task\/(.+)$/);
  const id = m ? decodeURIComponent(m[1]) : null;
  if (id !== state.taskId) closeLog();
  state.taskId = id;
  if (id) {
    const fresh = state.view !== 'task' || $('#t-key').dataset.id !== id;
    show('task');
    if (fresh) {
      $('#t-key').dataset.id = id;
      for (const sel of ['#t-title', '#t-key', '#t-repo', '#t-stage', '#t-running', '#t-result', '#log', '#log-state']) $(sel).textContent = '';
      $('#artefacts').replaceChildren();
      $('#diff').replaceChildren();
      $('#reject-form').hidden = true;
      selectTab($('#t-tabs'), $('#tab-artefacts'), false);
    }
    loadTask();
  } else if (hash === '#/board') {
    show('board');
    fillFilters();
    renderTotals();
    renderColumns();
    setInboxCount(state.inbox ? state.inbox.count : 0);
  } else {
    show('inbox');
    renderInbox();
    if (state.inbox) setInboxCount(state.inbox.count);
  }
}

window.addEventListener('hashchange', () => {
  if (state.events) route();
});

// Keys, when no field has the focus: j/k move through the inbox's items or
// the board's cards, / goes to the search, i and b switch views.
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) {
    if (e.key === 'Escape') t.blur();
    return;
  }
  if (e.key === 'i') location.hash = '#/';
  else if (e.key === 'b') location.hash = '#/board';
  else if (e.key === '/' && state.view === 'board') {
    e.preventDefault();
    $('#f-text').focus();
  } else if (e.key === 'j' || e.key === 'k') {
    const items = state.view === 'inbox'
      ? [...document.querySelectorAll('#inbox-list li .title')]
      : state.view === 'board' ? [...document.querySelectorAll('#columns .card')] : [];
    if (!items.length) return;
    const i = items.indexOf(document.activeElement.closest('.card, .title'));
    const next = e.key === 'j' ? Math.min(items.length - 1, i + 1) : Math.max(0, i - 1);
    items[i < 0 ? 0 : next].focus();
    e.preventDefault();
  }
});

start().catch((err) => {
  show('login');
  $('#login-error').textContent = err.message;
});
