// Browser tests of the orch dashboard: headless Debian Chromium driven by
// playwright-core, against a real `orch serve` on 127.0.0.1 running the
// example agents (a scripted pipeline). Run by scripts/browser-tests.sh.
//
//   ORCH_BIN=target/debug/orch node --test tests/browser/dashboard.test.mjs
//
// Screenshots go to target/browser-screenshots/ (ORCH_SCREENSHOTS overrides).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, mkdirSync, appendFileSync, readFileSync, rmSync } from 'node:fs';
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
  const s = await startServe(dir);
  serve = s.child;
  base = `http://${s.addr}`;
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--no-proxy-server', '--disable-background-networking'] });
  page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
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

let demo; // the task id of DEMO-2, created by the first test

test('a request without the token is refused', async () => {
  const created = await api('POST', '/api/tasks', { repo: 'demo', title: 'Watch me in the browser', key: 'DEMO-2' });
  assert.equal(created.status, 201, created.text);
  demo = created.json.result.task;
  for (const path of ['/api/tasks', '/api/board', '/queue', '/api/events']) {
    const r = await api('GET', path, null, null);
    assert.equal(r.status, 401, `${path}: ${r.text}`);
  }
  // Wait for the analysis, then try to approve without (and with a wrong) token.
  const deadline = Date.now() + TIMEOUT;
  while ((await api('GET', '/api/tasks/DEMO-2')).json.task.stage !== 'awaiting_approval') {
    assert.ok(Date.now() < deadline, 'DEMO-2 reaches awaiting_approval');
    await sleep(200);
  }
  const r = await api('POST', '/api/tasks/DEMO-2/approve', null, null);
  assert.equal(r.status, 401, r.text);
  const wrong = await api('POST', '/api/tasks/DEMO-2/approve', null, 'not-the-token');
  assert.equal(wrong.status, 401);
  const still = await api('GET', '/api/tasks/DEMO-2');
  assert.equal(still.json.task.stage, 'awaiting_approval', 'nothing changed');
});

test('log in, approve on the task page, watch the log and the board move live', async () => {
  await page.goto(base);
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#token', 'wrong');
  await page.click('#login-form button');
  await page.locator('#login-error').filter({ hasText: 'wrong token' }).waitFor();
  await page.fill('#token', TOKEN);
  await page.click('#login-form button');
  await page.locator('#board').waitFor({ state: 'visible' });
  await page.locator('#live.on').waitFor();

  const card = page.locator(`.column[data-stage="awaiting_approval"] .card[data-task="${demo}"]`);
  await card.waitFor();
  await page.locator('#totals').filter({ hasText: 'runs today' }).waitFor();
  await page.screenshot({ path: join(SHOTS, 'board.png'), fullPage: true });
  // A marker that a reload would wipe.
  await page.evaluate(() => { window.__sameDocument = true; });

  await card.click();
  await page.locator('#task').waitFor({ state: 'visible' });
  await page.locator('#t-stage', { hasText: 'awaiting_approval' }).waitFor();
  await page.locator('#timeline li').first().waitFor();
  await page.locator('#artefacts .artefact h4').first().waitFor();
  await page.click('.gates button[data-action="approve"]');
  await page.locator('#t-stage', { hasText: 'development' }).waitFor();

  // The developer's output streams into the log pane while it runs.
  await page.locator('#log', { hasText: 'developer: working' }).waitFor();
  const first = (await page.textContent('#log')).split('\n').filter(Boolean).length;
  await page.locator('#log', { hasText: 'developer: committed' }).waitFor();
  const later = (await page.textContent('#log')).split('\n').filter(Boolean).length;
  assert.ok(later > first, `more lines arrived (${first} then ${later})`);
  await page.locator('#runs tbody tr td', { hasText: 'developer' }).first().waitFor();
  await page.screenshot({ path: join(SHOTS, 'task.png'), fullPage: true });

  // Back to the board (no reload): the card moves through the stages to done.
  await page.click('a[href="#/"]');
  await page.locator('#board').waitFor({ state: 'visible' });
  await page.check('#f-terminal');
  const seen = new Set();
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const stage = await page.locator(`.card[data-task="${demo}"]`).getAttribute('data-stage', { timeout: 1000 }).catch(() => null);
    if (stage) seen.add(stage);
    if (stage === 'done') break;
    assert.ok(Date.now() < deadline, `DEMO-2 never reached done on the board; saw ${[...seen]}`);
    await sleep(100);
  }
  assert.ok(seen.size >= 2, `the board showed the stages move: ${[...seen]}`);
  assert.ok(['review', 'merge', 'development'].some((s) => seen.has(s)), `intermediate stages: ${[...seen]}`);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was never reloaded');
  await page.locator(`.column[data-stage="done"] .card[data-task="${demo}"]`).waitFor();
  await page.screenshot({ path: join(SHOTS, 'board-done.png'), fullPage: true });
});

test('STOP asks for confirmation and cancels the task', async () => {
  const created = await api('POST', '/api/tasks', { repo: 'demo', title: 'Stop me' });
  assert.equal(created.status, 201, created.text);
  const id = created.json.result.task;
  await page.goto(`${base}/#/task/${id}`);
  await page.locator('#task').waitFor({ state: 'visible' });
  await page.locator('#t-stage', { hasText: 'analysis' }).waitFor();
  await page.locator('#log', { hasText: 'analyst: working' }).waitFor();

  // Dismissed: nothing happens.
  page.once('dialog', (d) => d.dismiss());
  await page.click('.gates button[data-action="stop"]');
  await sleep(300);
  assert.equal(await page.textContent('#t-stage'), 'analysis');

  page.once('dialog', (d) => {
    assert.match(d.message(), /STOP/);
    d.accept();
  });
  await page.click('.gates button[data-action="stop"]');
  await page.locator('#t-stage', { hasText: 'cancelled' }).waitFor();
  await page.locator('#t-result', { hasText: 'stop: cancelled' }).waitFor();
  const r = await api('GET', `/api/tasks/${id}`);
  assert.equal(r.json.task.stage, 'cancelled');
  // The work was archived before the worktree went; the page lists it.
  assert.ok(r.json.archives.length >= 1, JSON.stringify(r.json.archives));
  await page.locator('#archives .archive', { hasText: `orch task restore ${id}` }).waitFor();
  await page.screenshot({ path: join(SHOTS, 'task-stopped.png'), fullPage: true });
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
