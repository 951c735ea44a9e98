// ---- the "needs you" inbox -------------------------------------------------
// The landing view: what waits for a person (GET /api/inbox, computed on the
// server), oldest first, each with its action in reach. The live stream
// sends a fresh inbox when it changes; an action reloads it at once.

const KIND_LABEL = {
  approval: 'Approval',
  confirm_deploy: 'Confirm Deploy',
  needs_attention: 'Needs attention',
  agent_question: 'Agent asks',
  tracker_write: 'Tracker write given up',
};

const ACTION_LABEL = {
  approve: 'Approve',
  reject: 'Reject…',
  'confirm-deploy': 'Confirm Deploy',
  retry: 'Retry',
  answer: 'Answer…',
  resend: 'Send again',
};

async function loadInbox() {
  try {
    setInbox(await api('/api/inbox'));
  } catch (err) {
    console.warn('inbox', err);
  }
}

function setInbox(inbox) {
  state.inbox = inbox;
  setInboxCount(inbox.count);
  if (state.view === 'inbox') renderInbox();
}

// Keeps what a person is typing: an open rejection or answer form survives a redraw.
function renderInbox() {
  const inbox = state.inbox;
  if (!inbox) return;
  const list = $('#inbox-list');
  const open = list.querySelector('form.reject:not([hidden]), form.answer:not([hidden])');
  const keep = open ? { key: open.closest('li').dataset.key, text: open.querySelector('textarea').value } : null;
  const focused = document.activeElement && list.contains(document.activeElement)
    ? document.activeElement.closest('li')?.dataset.key : null;
  list.replaceChildren(...inbox.items.map(inboxItem));
  $('#inbox-empty').hidden = inbox.items.length > 0;
  if (keep) {
    const li = list.querySelector(`li[data-key="${CSS.escape(keep.key)}"]`);
    if (li) {
      const form = li.querySelector('form.reject, form.answer');
      form.hidden = false;
      form.querySelector('textarea').value = keep.text;
    }
  }
  if (focused) list.querySelector(`li[data-key="${CSS.escape(focused)}"] a`)?.focus();
}

function itemKey(item) {
  return item.write_id != null ? `w${item.write_id}` : `${item.kind}:${item.task ? item.task.id : ''}`;
}

function inboxItem(item) {
  const t = item.task;
  const key = itemKey(item);
  const headingId = `ib-${key.replace(/[^a-z0-9]/gi, '-')}`;
  const title = t
    ? el('a', { href: `#/task/${t.id}`, class: 'title' }, el('span', { class: 'key', text: t.key }), ` ${t.title}`)
    : el('span', { class: 'title', text: 'A tracker write' });
  const result = el('p', { class: 'result', role: 'status' });
  const buttons = item.actions.map((a) => {
    const b = el('button', {
      type: 'button',
      class: ['approve', 'confirm-deploy'].includes(a) ? 'primary' : '',
      'data-action': a,
      'aria-describedby': headingId,
      text: ACTION_LABEL[a] || a,
    });
    b.addEventListener('click', () => inboxAction(item, a, li, result));
    return b;
  });
  const form = item.actions.includes('answer') ? answerForm(item, result) : rejectForm(item, result);
  const li = el('li', { class: `item kind-${item.kind}`, 'data-key': key, 'data-kind': item.kind, 'data-task': t ? t.id : '' },
    el('div', { class: 'head' },
      el('span', { class: `badge kind-${item.kind}`, text: KIND_LABEL[item.kind] || item.kind }),
      el('h2', { id: headingId }, title)),
    el('p', { class: 'meta' },
      t ? `${t.repo} · ${t.stage_name} · ` : '',
      since(item.since, 'waiting ')),
    item.detail ? el('p', { class: 'detail', text: item.detail }) : null,
    el('div', { class: 'actions' }, ...buttons),
    form,
    result);
  return li;
}

function rejectForm(item, result) {
  const id = `rj-${itemKey(item).replace(/[^a-z0-9]/gi, '-')}`;
  const area = el('textarea', { id, rows: '3', required: '' });
  const form = el('form', { class: 'reject', hidden: '' },
    el('label', { for: id, text: `What should change in ${item.task ? item.task.key : 'it'}?` }),
    area,
    el('div', {}, el('button', { type: 'submit', text: 'Send rejection' }), ' ',
      el('button', { type: 'button', class: 'cancel', text: 'Cancel' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const comment = area.value.trim();
    if (!comment) return;
    await runInboxAction(item, 'reject', result, comment);
  });
  form.querySelector('.cancel').addEventListener('click', () => { form.hidden = true; });
  return form;
}

// The answer to an agent's question: its session resumes with it.
function answerForm(item, result) {
  const id = `an-${itemKey(item).replace(/[^a-z0-9]/gi, '-')}`;
  const area = el('textarea', { id, rows: '3', required: '' });
  const form = el('form', { class: 'answer', hidden: '' },
    el('label', { for: id, text: `Your answer to the agent of ${item.task ? item.task.key : 'it'}` }),
    area,
    el('div', {}, el('button', { type: 'submit', text: 'Send answer' }), ' ',
      el('button', { type: 'button', class: 'cancel', text: 'Cancel' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const comment = area.value.trim();
    if (!comment) return;
    await runInboxAction(item, 'answer', result, comment);
  });
  form.querySelector('.cancel').addEventListener('click', () => { form.hidden = true; });
  return form;
}

async function inboxAction(item, action, li, result) {
  if (action === 'answer') {
    const form = li.querySelector('form.answer');
    form.hidden = false;
    form.querySelector('textarea').focus();
    return;
  }
  if (action === 'reject') {
    const form = li.querySelector('form.reject');
    form.hidden = false;
    form.querySelector('textarea').focus();
    return;
  }
  await runInboxAction(item, action, result);
}

async function runInboxAction(item, action, result, comment) {
  result.className = 'result';
  result.textContent = `${ACTION_LABEL[action] || action}…`;
  try {
    if (action === 'resend') {
      await api(`/api/outbox/${item.write_id}/resend`, { method: 'POST' });
    } else {
      const body = comment ? { comment } : undefined;
      await api(`/api/tasks/${item.task.id}/${action}`, { method: 'POST', body });
    }
    result.textContent = 'done';
    await loadInbox();
    // The item is gone; keep the keyboard in the list, on the next one.
    const next = $('#inbox-list li .title[href]');
    if (next) next.focus();
  } catch (err) {
    result.className = 'result error';
    result.textContent = `${ACTION_LABEL[action] || action} refused: ${err.message}`;
  }
}
