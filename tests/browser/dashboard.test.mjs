// Browser tests of the orch dashboard: headless Debian Chromium driven by
// playwright-core, against a real `orch serve` on 127.0.0.1 running the
// example agents (a scripted pipeline). Run by scripts/browser-tests.sh.
//
//   ORCH_BIN=target/debug/orch node --test tests/browser/dashboard.test.mjs
//
// Screenshots of each view at desktop and phone widths go to
// target/browser-screenshots/ (ORCH_SCREENSHOTS overrides); axe-core
// (tests/browser/package.json) checks each view's accessibility.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, mkdirSync, appendFileSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ORCH = resolve(process.env.ORCH_BIN || join(ROOT, 'target/debug/orch'));
const CHROMIUM = process.env.ORCH_CHROMIUM || '/usr/bin/chromium';
const SHOTS = resolve(process.env.ORCH_SCREENSHOTS || join(ROOT, 'target/browser-screenshots'));
const TOKEN = `browser-${randomBytes(12).toString('hex')}`;
const TIMEOUT = 120_000;

let work; // temp folder
let serve; // the orch serve child
let base; // http://127.0.0.1:PORT
let browser;
let page;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function env() {
  const e = { ...process.env, ORCH_API_TOKEN: TOKEN };
  delete e.ORCH_CONFIG;
  return e;
}

// The address in orch serve's "listening on http://ADDR (pid N)" line, once
// that line is complete. stderr arrives in chunks: a chunk can end inside the
// address ("…listening on http://127"), and matching that would send every
// request to host "127" (0.0.0.127), which a CI sandbox's egress proxy
// answered with 403 "resolve_deny". Only whole lines are read.
export function listeningAddress(log) {
  const whole = log.slice(0, log.lastIndexOf('\n') + 1);
  const m = whole.match(/listening on http:\/\/(\S+)/);
  return m ? m[1] : null;
}

async function startServe(dir) {
  const child = spawn(ORCH, ['serve', '--listen', '127.0.0.1:0'], {
    cwd: dir,
    env: env(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const addr = await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`orch serve did not start:\n${log}`)), 60_000);
    child.stderr.on('data', (d) => {
      log += d;
      const addr = listeningAddress(log);
      if (addr) {
        clearTimeout(t);
        res(addr);
      }
    });
    child.on('exit', (code) => rej(new Error(`orch serve exited ${code}:\n${log}`)));
  });
  child.stderr.resume();
  return { child, addr };
}

// Plain node:http with its own agent, not fetch: nothing between the test and
// the server on loopback (fetch may follow a proxy from the environment).
const direct = new http.Agent({ keepAlive: false });

function api(method, path, body, token = TOKEN) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  const data = body ? JSON.stringify(body) : undefined;
  if (data) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(data);
  }
  return new Promise((resolve, reject) => {
    const url = base + path;
    const req = http.request(url, { method, headers, agent: direct }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        // Only orch may answer: anything else between the test and the server
        // (a proxy, another program on the port) fails loudly, saying who.
        const server = res.headers.server || '';
        if (!server.startsWith('orch/')) {
          const peer = `${res.socket.remoteAddress}:${res.socket.remotePort}`;
          reject(new Error(`${method} ${url} was not answered by orch: peer ${peer}, `
            + `server header ${JSON.stringify(server)}, status ${res.statusCode}, body ${JSON.stringify(text.slice(0, 300))}`));
          return;
        }
        let json = null;
        try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'orch-browser-'));
  const dir = join(work, 'qs');
  // DEMO-1 goes to done in the quickstart's own process; the tests drive new items.
  execFileSync(ORCH, ['quickstart', '--auto', dir], { cwd: work, env: env(), stdio: ['ignore', 'ignore', 'inherit'] });
  // Slow the example agents down so people (and this test) can watch them work.
  appendFileSync(join(dir, 'orch.toml'), '\n[agent_env]\nallow = ["PATH", "HOME", "LANG", "TERM"]\nset = { ORCH_EXAMPLE_DELAY = "2" }\n');
  // A deploy stage, so a task comes to ask for Confirm Deploy.
  const toml = join(dir, 'orch.toml');
  const verify = 'verify = ["sh", "scripts/verify.sh"]\n';
  const text = readFileSync(toml, 'utf8');
  assert.ok(text.includes(verify), text);
  writeFileSync(toml, text.replace(verify, `${verify}\n[repos.deploy]\nprepare = ["true"]\nrun = ["true"]\n`));
  const s = await startServe(dir);
  serve = s.child;
  base = `http://${s.addr}`;
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--no-proxy-server', '--disable-background-networking'] });
  const ctx = await browser.newContext({ viewport: { width: 1500, height: 950 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT);
});

after(async () => {
  if (browser) await browser.close();
  if (serve) {
    serve.kill('SIGTERM');
    await new Promise((r) => serve.once('exit', r));
  }
  if (work && !process.env.ORCH_KEEP) rmSync(work, { recursive: true, force: true });
});

// ---- helpers of the dashboard tests -------------------------------------------

const AXE = readFileSync(join(ROOT, 'tests/browser/node_modules/axe-core/axe.min.js'), 'utf8');
const PHONE = { width: 375, height: 812 };

// axe-core in the page (evaluated over the devtools protocol, so the page's
// strict CSP does not apply to it); serious and critical violations fail.
async function axeClean(p, what) {
  await p.evaluate(AXE);
  const found = await p.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  });
  assert.deepEqual(found, [], `axe-core on ${what}`);
}

async function shot(p, name) {
  await p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function stageOf(key) {
  return (await api('GET', `/api/tasks/${key}`)).json.task.stage;
}

// Waits (polling the API) until the task is in `stage`.
async function reach(key, stage) {
  const deadline = Date.now() + TIMEOUT;
  let now;
  while ((now = await stageOf(key)) !== stage) {
    assert.ok(Date.now() < deadline, `${key} reaches ${stage} (is ${now})`);
    await sleep(200);
  }
}

// Nothing sticks out sideways: the page is no wider than the window.
async function fitsWidth(p, what) {
  const { scroll, inner } = await p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  assert.ok(scroll <= inner, `${what}: the page is ${scroll}px wide in a ${inner}px window`);
}

// A rejection comment the example analyst quotes into its next analysis:
// markup, a script, a javascript: link and a fence that never closes.
const HOSTILE = [
  '<script>window.__pwned = 1</script>',
  '<img src="x" onerror="window.__pwned = 2">',
  '[click me](javascript:window.__pwned=3)',
  '<div style="position:fixed;inset:0;background:red">overlay</div>',
  '```js',
  `const broken = "this fence never closes ${'x'.repeat(600)}";`,
].join('\n');

let demo; // DEMO-2: approved (from a phone), deployed, confirmed
let other; // DEMO-3: rejected with hostile Markdown, waits again
let blocker; // a task that waits for DEMO-3

test('a request without the token is refused', async () => {
  const created = await api('POST', '/api/tasks', { repo: 'demo', title: 'Watch me in the browser', key: 'DEMO-2' });
  assert.equal(created.status, 201, created.text);
  demo = created.json.result.task;
  const second = await api('POST', '/api/tasks', { repo: 'demo', title: 'Reject me with care', key: 'DEMO-3' });
  assert.equal(second.status, 201, second.text);
  other = second.json.result.task;
  for (const path of ['/api/tasks', '/api/board', '/api/inbox', '/queue', '/api/events']) {
    const r = await api('GET', path, null, null);
    assert.equal(r.status, 401, `${path}: ${r.text}`);
  }
  // Wait for the analysis, then try to approve without (and with a wrong) token.
  await reach('DEMO-2', 'awaiting_approval');
  const r = await api('POST', '/api/tasks/DEMO-2/approve', null, null);
  assert.equal(r.status, 401, r.text);
  const wrong = await api('POST', '/api/tasks/DEMO-2/approve', null, 'not-the-token');
  assert.equal(wrong.status, 401);
  assert.equal(await stageOf('DEMO-2'), 'awaiting_approval', 'nothing changed');
  await reach('DEMO-3', 'awaiting_approval');
});

test('log in: the inbox lists exactly what waits for a person, counted in the title and icon', async () => {
  await page.goto(base);
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#token', 'wrong');
  await page.click('#login-form button');
  await page.locator('#login-error').filter({ hasText: 'wrong token' }).waitFor();
  await page.fill('#token', TOKEN);
  await page.click('#login-form button');
  await page.locator('#inbox').waitFor({ state: 'visible' });
  await page.locator('#live.on').waitFor();
  const items = page.locator('#inbox-list li');
  await page.locator(`#inbox-list li[data-task="${other}"]`).waitFor();
  await page.locator(`#inbox-list li[data-task="${demo}"]`).waitFor();
  const listed = (await items.evaluateAll((lis) => lis.map((li) => `${li.dataset.kind}:${li.dataset.task}`))).sort();
  const fromApi = (await api('GET', '/api/inbox')).json;
  assert.deepEqual(listed, fromApi.items.map((i) => `${i.kind}:${i.task.id}`).sort());
  assert.deepEqual(listed, [`approval:${demo}`, `approval:${other}`].sort(), 'only the two analyses wait');
  assert.equal(await page.title(), '(2) orch');
  assert.match(await page.getAttribute('#favicon', 'href'), /favicon\.svg\?n=2$/);
  assert.equal((await page.textContent('#inbox-count')).trim(), '2');
  await page.locator(`#inbox-list li[data-task="${demo}"] button[data-action="approve"]`).waitFor();
  await axeClean(page, 'the inbox');
  await shot(page, 'inbox-desktop');
  await page.evaluate(() => { window.__sameDocument = true; });
});

test('reject with a comment from the inbox; the next analysis quotes hostile Markdown, which stays inert', async () => {
  const li = page.locator(`#inbox-list li[data-task="${other}"]`);
  await li.locator('button[data-action="reject"]').click();
  await li.locator('textarea').fill(HOSTILE);
  await li.locator('form.reject button[type="submit"]').click();
  await li.waitFor({ state: 'detached' });
  const events = (await api('GET', `/api/tasks/${other}`)).json.events;
  assert.ok(events.some((e) => e.kind === 'rejected'), JSON.stringify(events.map((e) => e.kind)));
  // The analyst runs again and the task comes back to the inbox, live.
  await page.locator(`#inbox-list li[data-task="${other}"]`).waitFor();

  await page.goto(`${base}/#/task/${other}`);
  await page.locator('#task').waitFor({ state: 'visible' });
  await page.locator('#t-stage[data-stage="awaiting_approval"]').waitFor();
  const art = page.locator('#artefacts [role=tab]', { hasText: '01-analysis.md' });
  await art.click();
  const md = page.locator('#artefacts [role=tabpanel]:not([hidden]) .md');
  await md.filter({ hasText: 'window.__pwned = 1' }).waitFor();
  assert.equal(await md.locator('script, img, [onerror], [style]').count(), 0, 'no live markup from the artefact');
  assert.equal(await md.locator('a[href^="javascript:"]').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'nothing ran');
  // The fence that never closes stays a code block inside the artefact's box.
  const box = await page.locator('#artefacts [role=tabpanel]:not([hidden])').boundingBox();
  for (const pre of await md.locator('pre').all()) {
    const b = await pre.boundingBox();
    assert.ok(b.x >= box.x - 1 && b.x + b.width <= box.x + box.width + 1, `a code block inside its box: ${JSON.stringify({ b, box })}`);
  }
  await fitsWidth(page, 'the task page');
  await axeClean(page, 'the task page');
  await shot(page, 'task-desktop');
  // The diff lists its files; each opens and closes.
  await page.click('#tab-diff');
  const file = page.locator('#diff details', { hasText: 'docs/work-items/DEMO-3/01-analysis.md' });
  await file.waitFor();
  assert.equal(await file.evaluate((d) => d.open), true);
  await file.locator('summary').click();
  assert.equal(await file.evaluate((d) => d.open), false);
  await axeClean(page, 'the diff');
});

test('a blocked task says what it waits for', async () => {
  const dir = join(work, 'qs');
  const out = execFileSync(ORCH, ['task', 'add', '--repo', 'demo', '--title', 'Needs DEMO-3 first', '--depends-on', String(other), '--json'], { cwd: dir, env: env() });
  blocker = JSON.parse(out).id ?? JSON.parse(out).task?.id;
  assert.ok(blocker, String(out));
  await page.goto(`${base}/#/board`);
  await page.locator('#board').waitFor({ state: 'visible' });
  const card = page.locator(`.card[data-task="${blocker}"]`);
  await card.locator('.mark.blocked', { hasText: 'DEMO-3' }).waitFor();
  // Stage names as the tracker has them, and columns that fit them.
  await page.locator('.column[data-stage="awaiting_approval"] h2', { hasText: 'Awaiting Approval' }).waitFor();
  const clipped = await page.locator('.column h2').evaluateAll((hs) => hs.filter((h) => h.scrollWidth > h.clientWidth).map((h) => h.textContent));
  assert.deepEqual(clipped, [], 'no column title is cut');
  // The text filter lives in the URL.
  await page.fill('#f-text', 'needs demo-3');
  await page.waitForFunction(() => location.hash.includes('q=needs+demo-3'));
  assert.equal(await page.locator('#columns .card').count(), 1);
  await page.reload();
  await page.locator(`.card[data-task="${blocker}"]`).waitFor();
  assert.equal(await page.inputValue('#f-text'), 'needs demo-3');
  await page.goto(`${base}/#/board`);
  await page.locator(`.card[data-task="${demo}"]`).waitFor();
  await axeClean(page, 'the board');
  await shot(page, 'board-desktop');
  // Dark mode follows the system's choice, with the same contrast.
  await page.emulateMedia({ colorScheme: 'dark' });
  await axeClean(page, 'the board in dark mode');
  await shot(page, 'board-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.evaluate(() => { window.__sameDocument = true; });
});

test('approve from a phone; the card shows the running agent and its time, live', async () => {
  const phone = await page.context().newPage();
  phone.setDefaultTimeout(TIMEOUT);
  await phone.setViewportSize(PHONE);
  await phone.goto(base);
  const li = phone.locator(`#inbox-list li[data-task="${demo}"]`);
  await li.waitFor();
  await fitsWidth(phone, 'the inbox on a phone');
  await axeClean(phone, 'the inbox on a phone');
  await shot(phone, 'inbox-phone');
  await li.locator('button[data-action="approve"]').click();
  await li.waitFor({ state: 'detached' });

  // The desktop board, never reloaded, shows the developer at work.
  const card = page.locator(`.card[data-task="${demo}"]`);
  const run = card.locator('.run', { hasText: 'developer' });
  await run.waitFor();
  const first = await run.locator('.since').textContent();
  await page.waitForFunction(({ id, was }) => {
    const s = document.querySelector(`.card[data-task="${id}"] .run .since`);
    return s && s.textContent !== was;
  }, { id: demo, was: first });
  await card.locator('.last').waitFor();
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was never reloaded');

  await phone.goto(`${base}/#/board`);
  await phone.locator(`.card[data-task="${demo}"]`).waitFor();
  await fitsWidth(phone, 'the board on a phone');
  await axeClean(phone, 'the board on a phone');
  await shot(phone, 'board-phone');
  await phone.goto(`${base}/#/task/${other}`);
  await phone.locator('#artefacts [role=tab]').first().waitFor();
  await fitsWidth(phone, 'the task page on a phone');
  await shot(phone, 'task-phone');
  await phone.close();
});

test('the task page lists the runs; Confirm Deploy from the inbox finishes the task', async () => {
  await page.goto(`${base}/#/task/${demo}`);
  await page.locator('#task').waitFor({ state: 'visible' });
  await page.click('#tab-runs');
  await page.locator('#runs tbody tr td', { hasText: 'developer' }).first().waitFor();

  // Review, merge, the deploy's prepare: then orch asks a person.
  await page.goto(base);
  const li = page.locator(`#inbox-list li[data-task="${demo}"][data-kind="confirm_deploy"]`);
  await li.waitFor();
  await li.locator('button[data-action="confirm-deploy"]').click();
  await li.waitFor({ state: 'detached' });
  await page.goto(`${base}/#/board?all=1`);
  try {
    await page.locator(`.column[data-stage="done"] .card[data-task="${demo}"]`).waitFor();
  } catch (e) {
    // Seen once in CI (1 of 5 runs): say where the task stood, for the
    // next look (its log and what the queue held).
    const task = await api('GET', `/api/tasks/${demo}`);
    const queue = await api('GET', '/queue');
    console.log(`task ${demo} when the wait ended:\n${task.text}\nqueue:\n${queue.text}`);
    throw e;
  }
  await shot(page, 'board-done');
});

test('STOP asks for confirmation and cancels the task', async () => {
  const created = await api('POST', '/api/tasks', { repo: 'demo', title: 'Stop me' });
  assert.equal(created.status, 201, created.text);
  const id = created.json.result.task;
  await page.goto(`${base}/#/task/${id}`);
  await page.locator('#task').waitFor({ state: 'visible' });
  await page.locator('#t-stage[data-stage="analysis"]').waitFor();
  await page.click('#tab-log');
  await page.locator('#log', { hasText: 'analyst: working' }).waitFor();

  // Dismissed: nothing happens.
  page.once('dialog', (d) => d.dismiss());
  await page.click('.gates button[data-action="stop"]');
  await sleep(300);
  assert.equal(await page.getAttribute('#t-stage', 'data-stage'), 'analysis');

  page.once('dialog', (d) => {
    assert.match(d.message(), /STOP/);
    d.accept();
  });
  await page.click('.gates button[data-action="stop"]');
  await page.locator('#t-stage[data-stage="cancelled"]').waitFor();
  await page.locator('#t-result', { hasText: 'stop: cancelled' }).waitFor();
  const r = await api('GET', `/api/tasks/${id}`);
  assert.equal(r.json.task.stage, 'cancelled');
  // The work was archived before the worktree went; the page lists it.
  assert.ok(r.json.archives.length >= 1, JSON.stringify(r.json.archives));
  await page.click('#tab-archives');
  await page.locator('#archives .archive', { hasText: `orch task restore ${id}` }).waitFor();
  await shot(page, 'task-stopped');
});

test('an edit of orch.toml that does not load shows a banner; the fix takes it away', async () => {
  const toml = join(work, 'qs', 'orch.toml');
  const good = readFileSync(toml, 'utf8');
  await page.goto(`${base}/#/board`);
  await page.locator('#board').waitFor({ state: 'visible' });
  const banner = page.locator('#config-banner');
  assert.equal(await banner.isHidden(), true, 'no banner while all is well');
  writeFileSync(toml, `${good}\n[queue\n`);
  try {
    // Live: the engine sees the edit within a second and the stream says so.
    await banner.waitFor({ state: 'visible' });
    await page.locator('#config-text', { hasText: 'the last edit was not applied' }).waitFor();
    await page.locator('#config-error', { hasText: 'orch.toml' }).waitFor();
    await axeClean(page, 'the board with the configuration banner');
    await page.setViewportSize(PHONE);
    await fitsWidth(page, 'the banner at phone width');
    await shot(page, 'config-banner-phone');
    await page.setViewportSize({ width: 1500, height: 950 });
    const queue = (await api('GET', '/queue')).json;
    assert.ok(queue.config.error.includes('orch.toml'), JSON.stringify(queue.config));
  } finally {
    writeFileSync(toml, good);
  }
  await banner.waitFor({ state: 'hidden' });
});

test('the address orch serve printed is read from whole lines only', () => {
  const line = 'orch serve: listening on http://127.0.0.1:40123 (pid 7)\n';
  // Every way stderr could be cut into two chunks.
  for (let cut = 0; cut < line.length; cut++) {
    const first = 'warning: something\n' + line.slice(0, cut);
    assert.equal(listeningAddress(first), null, JSON.stringify(first));
    assert.equal(listeningAddress(first + line.slice(cut)), '127.0.0.1:40123');
  }
});

test('an answer that is not from orch fails with the URL, the peer and its server header', async () => {
  // Stands in for what a CI run once met: an egress proxy answering 403
  // "resolve_deny" on the address orch printed.
  const impostor = http.createServer((req, res) => {
    res.writeHead(403, { Server: 'egress-proxy', 'Content-Type': 'text/plain' });
    res.end('resolve_deny: denied destination');
  });
  await new Promise((r) => impostor.listen(0, '127.0.0.1', r));
  const port = impostor.address().port;
  const saved = base;
  base = `http://127.0.0.1:${port}`;
  try {
    await assert.rejects(api('GET', '/api/tasks'), (e) => {
      assert.match(e.message, new RegExp(`GET http://127\\.0\\.0\\.1:${port}/api/tasks was not answered by orch`));
      assert.match(e.message, new RegExp(`peer 127\\.0\\.0\\.1:${port}`));
      assert.match(e.message, /server header "egress-proxy", status 403/);
      assert.match(e.message, /resolve_deny/);
      return true;
    });
  } finally {
    base = saved;
    await new Promise((r) => impostor.close(r));
  }
});
