// End-to-end tests of the web console and the browser client: the real `sluice` binary, headless
// Debian Chromium driven by playwright-core, other group members in Node (the same client.js
// over the `ws` package) and in Rust (a process on the Rust SDK: server/tests/browser_member.rs),
// and the example WebAssembly plugins. Run through ./run.sh (it installs and builds what is
// needed).
//
// Environment: SLUICE_BIN (the broker binary; default $CARGO_TARGET_DIR/debug/sluice or
// ../../target/debug/sluice), PLUGINS_DIR (the built example plugins; default
// $CARGO_TARGET_DIR/plugins/wasm32-unknown-unknown/release), RUST_MEMBER (the browser_member
// test binary of the server crate; run.sh finds it), CHROMIUM (default
// /usr/bin/chromium), ARTIFACTS (screenshots; default ./artifacts).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(root, process.env.CARGO_TARGET_DIR) : join(root, 'target');
const BIN = process.env.SLUICE_BIN || join(targetDir, 'debug', 'sluice');
const PLUGINS_DIR = process.env.PLUGINS_DIR || join(targetDir, 'plugins', 'wasm32-unknown-unknown', 'release');
const RUST_MEMBER = process.env.RUST_MEMBER;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = resolve(here, process.env.ARTIFACTS || 'artifacts');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or a rejection after `ms`; the timer does not outlive it. */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function eventually(what, fn, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(50);
  }
}

/** A `sluice serve` process on its own data directory. */
class Broker {
  constructor(dir) {
    this.dir = dir;
    this.proc = null;
    this.addr = null;
  }

  /** Starts it (on `listen`, default a free port) and waits for the readiness line. */
  async start(listen = '127.0.0.1:0') {
    const proc = spawn(BIN, ['serve', '--listen', listen, '--data-dir', join(this.dir, 'data'), '--group-session-timeout-ms', '10000'], {
      env: { ...process.env, SLUICE_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.proc = proc;
    const exited = new Promise((_, reject) => proc.once('exit', (code) => reject(new Error(`sluice exited (${code}) before it was ready`))));
    const ready = new Promise((resolveAddr) => {
      const lines = createInterface({ input: proc.stdout });
      lines.on('line', (line) => {
        const m = /^sluice listening on http:\/\/(\S+) \(data in .*\)$/.exec(line);
        if (m) resolveAddr(m[1]);
      });
    });
    this.addr = await within(20000, 'sluice did not print its readiness line', Promise.race([ready, exited]));
    return this;
  }

  get url() {
    return `http://${this.addr}`;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await within(15000, 'sluice did not stop after SIGTERM', done).catch(() => this.proc.kill('SIGKILL'));
  }

  async api(method, path, body) {
    const raw = body instanceof Uint8Array;
    const r = await fetch(this.url + path, {
      method,
      headers: body && !raw ? { 'content-type': 'application/json' } : {},
      body: body ? (raw ? body : JSON.stringify(body)) : undefined,
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }
}

let work;
let broker;
let browser;
let Sluice;

before(async () => {
  assert.ok(existsSync(BIN), `no broker binary at ${BIN}: build it with cargo build -p sluice-server --bin sluice`);
  assert.ok(RUST_MEMBER && existsSync(RUST_MEMBER), `RUST_MEMBER (${RUST_MEMBER}) is not the browser_member test binary: run ./run.sh, or build it with cargo test -p sluice-server --test browser_member --no-run`);
  // The small JSON plugins: a debug broker compiles them in about a second, where the keyword
  // filter (regex inside, 0.8 MB) takes 10 s and more on a loaded machine.
  for (const f of ['json_filter', 'json_partitioner']) {
    assert.ok(existsSync(pluginFile(f)), `no ${pluginFile(f)}: build the example plugins (cd plugins && cargo build --release --target wasm32-unknown-unknown), or run ./run.sh`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'sluice-browser-'));
  broker = await new Broker(work).start();
  // Node loads the served client as an ES module from a .mjs copy (the repo has no package.json
  // marking server/console as ESM).
  const copy = join(work, 'client.mjs');
  copyFileSync(join(root, 'server/console/client.js'), copy);
  ({ Sluice } = await import(pathToFileURL(copy)));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await broker?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A fresh page that fails the test on any page error or console error. */
async function openPage(path = '/') {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  await page.goto(broker.url + path);
  await page.waitForSelector('#conn[data-state="open"]');
  return {
    page,
    errors,
    close: async () => {
      await context.close();
      assert.deepEqual(errors, [], 'the page logged errors');
    },
  };
}

/** A built example plugin (`json_filter`). */
function pluginFile(name) {
  return join(PLUGINS_DIR, `${name}.wasm`);
}

/** Uploads an example plugin over HTTP unless the broker has it already (compiling a module in
 *  a debug broker takes seconds, so tests share them). */
async function ensurePlugin(name, file) {
  if ((await broker.api('GET', `/v1/plugins/${name}`)).status === 200) return;
  const up = await broker.api('PUT', `/v1/plugins/${name}`, new Uint8Array(readFileSync(pluginFile(file))));
  assert.equal(up.status, 200, JSON.stringify(up.body));
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

test('serves the console, its assets and the client module with their types', async () => {
  for (const [path, type] of [['/', 'text/html'], ['/console/app.js', 'text/javascript'], ['/console/style.css', 'text/css'], ['/v1/client.js', 'text/javascript']]) {
    const r = await fetch(broker.url + path);
    assert.equal(r.status, 200, path);
    assert.ok(r.headers.get('content-type').startsWith(type), `${path}: ${r.headers.get('content-type')}`);
    const again = await fetch(broker.url + path, { headers: { 'if-none-match': r.headers.get('etag') } });
    assert.equal(again.status, 304, path);
  }
  const served = await (await fetch(`${broker.url}/v1/client.js`)).text();
  assert.equal(served, readFileSync(join(root, 'server/console/client.js'), 'utf8'));
  assert.equal(readFileSync(join(root, 'examples/browser/client.js'), 'utf8'), served, 'examples/browser/client.js is a copy of server/console/client.js');
});

test('create a topic in the console, produce from the page and see the record in the live tail', async () => {
  const { page, close } = await openPage('/');
  await page.waitForSelector('#topics-page');
  await page.keyboard.press('c');
  await page.fill('#create-topic-form input[name="name"]', 'orders');
  await page.fill('#create-topic-form input[name="partitions"]', '3');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#topic-page[data-topic="orders"]');
  assert.equal((await broker.api('GET', '/v1/topics/orders')).body.partitions.length, 3);
  await page.waitForSelector('#tail-status[data-state="live"]');

  await page.keyboard.press('e');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'value');
  await page.keyboard.type('{"order": 42, "item": "espresso"}');
  await page.fill('#produce-form input[name="key"]', 'user-7');
  await page.fill('#produce-form textarea[name="headers"]', 'trace: t-1');
  await page.keyboard.press('Control+Enter');
  const result = await page.waitForSelector('#produce-result.ok');
  const m = /partition (\d+), offset (\d+)/.exec(await result.textContent());
  assert.ok(m, await result.textContent());

  const row = await page.waitForSelector(`#tail-rows tr[data-partition="${m[1]}"][data-offset="${m[2]}"]`);
  assert.match(await row.textContent(), /user-7.*"order": 42/);
  // The broker has it where the page said.
  const fetched = await broker.api('GET', `/v1/topics/orders/partitions/${m[1]}/records?offset=${m[2]}`);
  assert.deepEqual(fetched.body.records[0].headers, { trace: 't-1' });
  assert.equal(fetched.body.records[0].key, 'user-7');

  // Records from elsewhere show up too, and the filter narrows the tail.
  await broker.api('POST', '/v1/topics/orders/records', { records: [{ key: 'user-8', value: 'latte' }, { key: 'user-9', value: 'mocha' }] });
  await eventually('3 rows in the tail', async () => (await page.$$('#tail-rows tr')).length === 3);
  await page.keyboard.press('Escape'); // leave the produce form
  await page.keyboard.press('/');
  await page.keyboard.type('latte');
  await eventually('the filter', async () => (await page.$$('#tail-rows tr:not([hidden])')).length === 1);
  await page.keyboard.press('Escape');
  await shot(page, 'topic-live-tail');
  // A click opens the record.
  await page.fill('#search', '');
  await page.dispatchEvent('#search', 'input');
  await page.click(`#tail-rows tr[data-offset="${m[2]}"][data-partition="${m[1]}"]`);
  const pre = await page.waitForSelector('dialog[open] pre.record-value');
  assert.match(await pre.textContent(), /"item": "espresso"/);
  await shot(page, 'record-detail');
  await page.keyboard.press('Escape');

  // Pause holds records back (no credit is granted while paused); resume shows them.
  await page.keyboard.press('p');
  await page.waitForSelector('#tail-status[data-state="paused"]');
  await broker.api('POST', '/v1/topics/orders/records', { records: [{ value: 'while-paused-1', partition: 0 }, { value: 'while-paused-2', partition: 0 }] });
  // Both reach the page (the tail holds the first, the second waits in the subscription), and
  // neither is shown.
  await eventually('the records to reach the paused page', async () => (await page.evaluate(() => window.sluice.view.tail.source.buffered)) === 1);
  assert.equal((await page.$$('#tail-rows tr')).length, 3, 'paused: nothing new is shown');
  await page.keyboard.press('p');
  await eventually('records after resume', async () => (await page.$$('#tail-rows tr')).length === 5);
  await page.keyboard.press('x');
  assert.equal((await page.$$('#tail-rows tr')).length, 0);
  await close();
});

test('topics table: sizes, offsets and throughput; delete a topic from the console', async () => {
  await broker.api('POST', '/v1/topics', { name: 'clicks', partitions: 2 });
  await broker.api('POST', '/v1/topics', { name: 'scratch', partitions: 1 });
  const { page, close } = await openPage('/#/topics');
  // Keep records flowing so the table shows a rate.
  let producing = true;
  const producer = (async () => {
    for (let i = 0; producing; i++) {
      await broker.api('POST', '/v1/topics/clicks/records', { records: Array.from({ length: 20 }, (_, j) => ({ key: `k${j}`, value: `click ${i}-${j}` })) });
      await sleep(100);
    }
  })();
  const row = await page.waitForSelector('#topics-table tr[data-topic="clicks"]');
  await eventually('a produce rate for clicks', async () => {
    const rate = await row.$eval('td:nth-child(7)', (td) => td.textContent);
    return Number.parseFloat(rate) > 0;
  });
  const cells = await row.$$eval('td', (tds) => tds.map((td) => td.textContent));
  assert.equal(cells[1], '2');
  assert.ok(Number(cells[2].replace(/,/g, '')) >= 20, `records: ${cells[2]}`);
  assert.match(cells[3], /KiB|B$/);
  // Keyboard: j selects the first row, Enter opens it.
  await page.keyboard.press('j');
  assert.equal(await page.getAttribute('#topics-table tbody tr:first-child', 'aria-selected'), 'true');
  await shot(page, 'topics');

  await page.click('#topics-table tr[data-topic="scratch"] button');
  await page.fill('dialog[open] input', 'scratch');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#topics-table tr[data-topic="scratch"]', { state: 'detached' });
  assert.equal((await broker.api('GET', '/v1/topics/scratch')).status, 404);

  // The topic page's chart plots the produce rate.
  await page.click('#topics-table tr[data-topic="clicks"] a');
  await page.waitForSelector('#topic-page[data-topic="clicks"]');
  await eventually('the chart to plot a rate', async () => Number(await page.getAttribute('#throughput-chart', 'data-peak-records-per-sec')) > 0);
  await eventually('a few seconds of samples', async () => Number(await page.getAttribute('#throughput-chart', 'data-samples')) >= 5);
  await page.click('.windows button[data-minutes="1"]');
  assert.match(await page.textContent('#topic-page .panel h2'), /last 1 minute/);
  const canvas = await page.$('#throughput-chart');
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width - 40, box.y + 60);
  producing = false;
  await producer;
  await shot(page, 'topic-throughput');
  await close();
});

test('consumer groups: state and lag per partition', async () => {
  await broker.api('POST', '/v1/topics', { name: 'payments', partitions: 2 });
  const records = Array.from({ length: 10 }, (_, i) => ({ value: `payment ${i}`, partition: i % 2 }));
  assert.equal((await broker.api('POST', '/v1/topics/payments/records', { records })).status, 200);
  const commit = await broker.api('POST', '/v1/groups/billing/offsets', { offsets: [{ topic: 'payments', partition: 0, offset: 2 }, { topic: 'payments', partition: 1, offset: 5 }] });
  assert.equal(commit.status, 200);

  const { page, close } = await openPage('/#/topics');
  await page.keyboard.press('g');
  await page.keyboard.press('g');
  const row = await page.waitForSelector('#groups-table tr[data-group="billing"]');
  await eventually('the total lag', async () => (await row.$eval('td.lag', (td) => td.textContent)) === '3');
  await shot(page, 'groups');
  await page.keyboard.press('j');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#group-page[data-group="billing"]');
  const lag = async (p) => page.getAttribute(`#lag-table tr[data-topic="payments"][data-partition="${p}"]`, 'data-lag');
  await eventually('lag rows', async () => (await lag(0)) === '3' && (await lag(1)) === '0');
  assert.equal(await page.textContent('#group-total-lag'), 'total lag 3');
  await shot(page, 'group-lag');
  await close();
});

test('a console page and a Node client, members of one group, split the partitions', async () => {
  await broker.api('POST', '/v1/topics', { name: 'events', partitions: 4 });
  const node = await Sluice.connect(`ws://${broker.addr}/v1/ws`, { WebSocket, clientName: 'e2e-node-member' });
  const revoked = [];
  const member = await node.joinGroup({ group: 'split', topics: ['events'], from: 'earliest', onRevoke: (ps) => { revoked.push(...ps); } });
  assert.equal(member.assignment.length, 4, 'alone, the Node member owns every partition');
  const nodeGot = [];
  const consuming = (async () => {
    for await (const r of member) nodeGot.push(r);
  })();

  const { page, close } = await openPage('/#/topics/events');
  await page.waitForSelector('#tail-status[data-state="live"]');
  await page.selectOption('#tail-mode', 'group');
  await page.fill('#tail-group', 'split');
  await page.selectOption('#tail-from', 'earliest');
  await page.click('#tail-start');

  const pageParts = async () => {
    const v = await page.getAttribute('#tail-assignment', 'data-partitions');
    return v ? v.split(',').map(Number) : [];
  };
  await eventually('the members to split 2 + 2', async () => (await pageParts()).length === 2 && member.assignment.length === 2);
  const mine = await pageParts();
  const theirs = member.assignment.map((tp) => tp.partition);
  assert.deepEqual([...mine, ...theirs].sort(), [0, 1, 2, 3], `disjoint and complete: page ${mine}, node ${theirs}`);
  assert.deepEqual(revoked.map((tp) => tp.partition).sort(), [...mine].sort(), 'the Node member gave up exactly what the page got');
  const described = (await broker.api('GET', '/v1/groups/split')).body;
  assert.equal(described.members.length, 2);
  assert.equal(described.state, 'stable');

  // Records of every partition reach exactly the member that owns it.
  const records = Array.from({ length: 8 }, (_, i) => ({ value: `event-${i}`, partition: i % 4 }));
  await broker.api('POST', '/v1/topics/events/records', { records });
  await eventually('the page to show its records', async () => (await page.$$('#tail-rows tr')).length === 4);
  await eventually('the Node member to get its records', async () => nodeGot.length === 4);
  const pageRows = await page.$$eval('#tail-rows tr', (trs) => trs.map((tr) => Number(tr.dataset.partition)));
  assert.ok(pageRows.every((p) => mine.includes(p)), `page rows ${pageRows} outside ${mine}`);
  assert.ok(nodeGot.every((r) => theirs.includes(r.partition)), 'node records outside its partitions');
  await shot(page, 'group-member-split');

  // The Node member commits what it consumed and leaves: the page takes over everything.
  await member.close();
  await consuming;
  await eventually('the page to own all 4 partitions', async () => (await pageParts()).length === 4);
  const offsets = (await broker.api('GET', '/v1/groups/split/offsets')).body.offsets;
  for (const p of theirs) {
    assert.equal(offsets.find((o) => o.partition === p)?.offset, 2, `partition ${p} committed after its 2 records`);
  }
  // No record is shown twice after the handover: a partition delivers in order, so once a new
  // record of each handed-over partition is shown, any repeat of its older ones would be too.
  await broker.api('POST', '/v1/topics/events/records', { records: theirs.map((partition) => ({ value: 'after', partition })) });
  for (const p of theirs) await page.waitForSelector(`#tail-rows tr[data-partition="${p}"][data-offset="2"]`);
  assert.equal((await page.$$('#tail-rows tr')).length, 6, 'the 4 records of its own partitions and the 2 new ones, nothing twice');
  await shot(page, 'group-member-takeover');
  await close();
  await node.close();
});

test('broker page: health, readiness, version, brokers', async () => {
  const { page, close } = await openPage('/#/topics');
  await page.keyboard.press('g');
  await page.keyboard.press('b');
  await page.waitForSelector('#broker-page');
  await eventually('health', async () => (await page.textContent('#broker-health')) === 'ok');
  assert.equal(await page.textContent('#broker-ready'), 'ready');
  const cluster = (await broker.api('GET', '/v1/cluster')).body;
  assert.equal(await page.textContent('#broker-version'), cluster.brokers[0].version);
  assert.equal(await page.textContent('#brokers-table tr[data-broker="0"] td:nth-child(2)'), broker.addr);
  await eventually('totals from /metrics', async () => Number(await page.textContent('#broker-topics')) >= 4);
  // Partition leaders: on one broker, that broker leads each partition of every topic.
  await eventually('the leaders of orders', async () => (await page.$$('#leaders-table tr[data-topic="orders"] .chip[data-leader="0"]')).length === 3);
  assert.equal((await page.$$('#leaders-table tr[data-topic="orders"] .chip')).length, 3);
  await page.keyboard.press('/');
  await page.keyboard.type('orde');
  await eventually('the leaders narrowed to orders', async () => (await page.$$eval('#leaders-table tr[data-topic]:not([hidden])', (trs) => trs.map((tr) => tr.dataset.topic))).join() === 'orders');
  await page.keyboard.press('Escape');
  // Help and Esc.
  await page.keyboard.press('?');
  await page.waitForSelector('#help[open]');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('#help').open);
  await shot(page, 'broker');
  await close();
});

test('the example page produces and consumes with its copy of the client', async () => {
  const dir = join(root, 'examples/browser');
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = join(dir, path === '/' ? 'index.html' : path);
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(file)] || 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    await broker.api('POST', '/v1/topics', { name: 'chat', partitions: 1 });
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.address().port}/?broker=ws://${broker.addr}/v1/ws&topic=chat`);
    await page.waitForSelector('#status[data-state="open"]');
    await page.fill('#message', 'hello from the example');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#messages li:has-text("hello from the example")');
    await broker.api('POST', '/v1/topics/chat/records', { records: [{ key: 'curl', value: 'hello from HTTP' }] });
    await page.waitForSelector('#messages li:has-text("hello from HTTP")');
    await page.screenshot({ path: join(ARTIFACTS, 'example.png') });

    // The same page with a filter plugin in its URL shows only what the filter keeps.
    await ensurePlugin('json-field', 'json_filter');
    const filtered = await context.newPage();
    filtered.on('pageerror', (e) => errors.push(e.message));
    await filtered.goto(`http://127.0.0.1:${server.address().port}/?broker=ws://${broker.addr}/v1/ws&topic=chat&filter=json-field&filter.field=from&filter.op=${encodeURIComponent('==')}&filter.value=curl`);
    await filtered.waitForSelector('#status[data-state="open"]');
    const json = JSON.stringify({ from: 'curl', text: 'JSON from HTTP' });
    await broker.api('POST', '/v1/topics/chat/records', { records: [{ key: 'curl', value: JSON.stringify({ from: 'someone else', text: 'no' }) }, { key: 'curl', value: json }] });
    await filtered.waitForSelector('#messages li:has-text("JSON from HTTP")');
    assert.deepEqual(await filtered.$$eval('#messages li', (lis) => lis.map((li) => li.lastChild.textContent)), [json], 'only the message the filter keeps');
    await context.close();
    assert.deepEqual(errors, []);
  } finally {
    server.close();
  }
});

test('client: typed errors; a subscription and a group member carry on after the broker restarts', async () => {
  await broker.api('POST', '/v1/topics', { name: 'resume', partitions: 2 });
  await broker.api('POST', '/v1/topics/resume/records', { records: Array.from({ length: 6 }, (_, i) => ({ value: `v${i}`, partition: i % 2 })) });
  // A group member in Node, which has committed what it read when the broker goes away.
  const node = await Sluice.connect(`ws://${broker.addr}/v1/ws`, { WebSocket, minBackoffMs: 50 });
  const lost = [];
  const member = await node.joinGroup({ group: 'survivor', topics: ['resume'], from: 'earliest', onRevoke: (ps, { lost: l }) => { if (l) lost.push(...ps); } });
  const memberGot = [];
  const consuming = (async () => {
    for await (const r of member) memberGot.push(r.value);
  })();
  await eventually('the member to read 6 records', async () => memberGot.length === 6);
  await member.commit();
  const firstId = member.memberId;
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${broker.url}/`);
  const code = await page.evaluate(async () => {
    const { Sluice } = await import('/v1/client.js');
    const c = await Sluice.connect();
    window.c = c;
    try {
      await c.produce('no-such-topic', ['x']);
      return 'no error';
    } catch (e) {
      return `${e.name}/${e.code}`;
    }
  });
  assert.equal(code, 'SluiceError/unknown_topic');
  // A small window (credit) makes the broker push in several steps.
  await page.evaluate(async () => {
    window.got = [];
    window.states = [];
    window.c.on('status', (s) => window.states.push(s));
    const sub = await window.c.subscribe({ topic: 'resume', from: 'earliest', creditBytes: 64 });
    (async () => {
      for await (const r of sub) window.got.push(`${r.partition}:${r.offset}:${r.value}`);
    })();
  });
  await eventually('the first 6 records', async () => (await page.evaluate(() => window.got.length)) === 6);

  const port = broker.addr.split(':').pop();
  await broker.stop();
  await eventually('the client to notice', async () => (await page.evaluate(() => window.states.includes('reconnecting'))));
  await broker.start(`127.0.0.1:${port}`);
  await eventually('the client to reconnect', async () => (await page.evaluate(() => window.c.state)) === 'open', 15000);
  // The restarted broker does not know the member any more: it loses its partitions and rejoins.
  await eventually('the member to rejoin', async () => member.memberId !== firstId && member.assignment.length === 2, 15000);
  assert.equal(lost.length, 2, 'the old partitions were reported lost');
  await broker.api('POST', '/v1/topics/resume/records', { records: Array.from({ length: 4 }, (_, i) => ({ value: `v${6 + i}`, partition: i % 2 })) });
  // The last record of each partition: anything repeated would have come before it.
  await eventually('the records produced after the restart', async () => (await page.evaluate(() => window.got.includes('0:4:v8') && window.got.includes('1:4:v9'))));
  const got = await page.evaluate(() => window.got);
  const byPartition = (p) => got.filter((g) => g.startsWith(`${p}:`));
  assert.deepEqual(byPartition(0), ['0:0:v0', '0:1:v2', '0:2:v4', '0:3:v6', '0:4:v8'], 'partition 0: in order, no gap, no repeat');
  assert.deepEqual(byPartition(1), ['1:0:v1', '1:1:v3', '1:2:v5', '1:3:v7', '1:4:v9'], 'partition 1: in order, no gap, no repeat');
  // The member went on from its committed offsets: every record once.
  await eventually('the member to read the new records', async () => memberGot.length >= 10);
  assert.deepEqual([...memberGot].sort(), ['v0', 'v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7', 'v8', 'v9']);
  await context.close();
  await node.close();
  await consuming;
});

test('plugins page: upload a .wasm from the page, its kind, size, sha256, users and health; delete (refused while a topic routes with it)', async () => {
  const { page, errors, close } = await openPage('/#/topics');
  // Chromium logs the refused requests below (400 answers) as console errors; those are expected.
  const refusedLogged = () => {
    const left = errors.filter((e) => !/Failed to load resource: the server responded with a status of 400/.test(e));
    assert.ok(left.length < errors.length, 'the refused request was logged');
    errors.splice(0, errors.length, ...left);
  };
  await page.keyboard.press('g');
  await page.keyboard.press('p');
  await page.waitForSelector('#plugins-page');
  await page.keyboard.press('u');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'upload-file');
  await page.setInputFiles('#upload-file', pluginFile('json_filter'));
  assert.equal(await page.inputValue('#upload-name'), 'json_filter', 'the name comes from the file');
  await page.fill('#upload-name', 'amount-over');
  await page.press('#upload-name', 'Enter');
  await page.waitForSelector('#upload-result.ok[data-plugin="amount-over"]', { timeout: 60000 });
  const described = (await broker.api('GET', '/v1/plugins/amount-over')).body;
  assert.equal(described.kind, 'filter');
  assert.equal(described.size_bytes, readFileSync(pluginFile('json_filter')).length, 'the broker has the bytes the page sent');
  const row = await page.waitForSelector('#plugins-table tr[data-plugin="amount-over"]');
  const cells = await row.$$eval('td', (tds) => tds.map((td) => td.textContent));
  assert.equal(cells[1], 'filter');
  assert.equal(await row.$eval('td:nth-child(4)', (td) => td.title), described.sha256);
  assert.match(cells[2], /KiB$/);
  assert.equal(await row.$eval('td.health .badge', (b) => b.dataset.health), 'ok');

  // Not a module: the broker's check is shown, nothing is stored.
  await page.setInputFiles('#upload-file', { name: 'junk.wasm', mimeType: 'application/wasm', buffer: Buffer.from('definitely not wasm') });
  await page.click('#upload-form button[type="submit"]');
  const bad = await page.waitForSelector('#upload-result.bad');
  assert.match(await bad.textContent(), /^invalid_plugin: /);
  refusedLogged();
  assert.equal((await broker.api('GET', '/v1/plugins/junk')).status, 404);

  // A partitioner a topic routes with: listed with the topic, and not deletable.
  await ensurePlugin('by-region', 'json_partitioner');
  const created = await broker.api('POST', '/v1/topics', { name: 'routed', partitions: 2, configs: { partitioner: 'by-region', 'partitioner.param.route.eu': '0' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await page.waitForSelector('#plugins-table tr[data-plugin="by-region"] td.attachments a:has-text("routed")');
  await shot(page, 'plugins');
  await page.click('#plugins-table tr[data-plugin="by-region"] button');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Enter');
  const refused = await page.waitForSelector('#delete-plugin-error[data-code="invalid_config"]');
  assert.match(await refused.textContent(), /partitioner of topic `routed`/);
  refusedLogged();
  await shot(page, 'plugin-delete-refused');
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog[open]', { state: 'detached' });
  assert.equal((await broker.api('GET', '/v1/plugins/by-region')).status, 200);

  // Keyboard: select the uploaded one with j, d deletes it.
  const selected = () => page.evaluate(() => document.querySelector('#plugins-table tr[aria-selected="true"]')?.dataset.plugin);
  for (let i = 0; i < 20 && (await selected()) !== 'amount-over'; i++) await page.keyboard.press('j');
  assert.equal(await selected(), 'amount-over');
  await page.keyboard.press('d');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#plugins-table tr[data-plugin="amount-over"]', { state: 'detached' });
  assert.equal((await broker.api('GET', '/v1/plugins/amount-over')).status, 404);
  await broker.api('DELETE', '/v1/topics/routed');
  await close();
});

test('live tail: attach a filter plugin with parameters and see only the matching records', async () => {
  await ensurePlugin('json-field', 'json_filter');
  await broker.api('POST', '/v1/topics', { name: 'logs', partitions: 2 });
  const { page, close } = await openPage('/#/topics/logs');
  await page.waitForSelector('#tail-status[data-state="live"]');
  await page.waitForSelector('#tail-plugin option[value="json-field"]', { state: 'attached' });
  await page.keyboard.press('f');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tail-plugin');
  await page.selectOption('#tail-plugin', 'json-field');

  // Without parameters the plugin refuses to start: the broker's error is shown and the tail
  // goes on unfiltered.
  await page.click('#tail-filter-apply');
  await page.waitForSelector('.toast.bad:has-text("invalid_plugin")');
  await page.waitForSelector('#tail-status[data-state="live"]');
  assert.equal(await page.isHidden('#tail-filter-active'), true);

  await page.fill('#tail-params', 'field=level&op===&value=ERROR');
  await page.press('#tail-params', 'Enter');
  await page.waitForSelector('#tail-filter-active[data-plugin="json-field"]');
  await page.waitForSelector('#tail-status[data-state="live"]');
  assert.match(await page.textContent('#tail-filter-active'), /field=level, op===, value=ERROR/);

  const log = (level, msg, partition) => ({ value: JSON.stringify({ level, msg }), partition });
  await broker.api('POST', '/v1/topics/logs/records', { records: [log('INFO', 'boot', 0), log('ERROR', 'disk full', 0), log('DEBUG', 'tick', 0), log('ERROR', 'timeout', 0), { value: 'not JSON at all', partition: 0 }] });
  await broker.api('POST', '/v1/topics/logs/records', { records: [log('INFO', 'elsewhere', 1), log('ERROR', 'on p1', 1)] });
  // A last match after the others: once it is shown, every record before it in its partition
  // has been through the filter.
  await broker.api('POST', '/v1/topics/logs/records', { records: [log('ERROR', 'last', 0)] });
  await page.waitForSelector('#tail-rows tr[data-partition="0"][data-offset="5"]');
  await page.waitForSelector('#tail-rows tr[data-partition="1"][data-offset="1"]');
  const rows = await page.$$eval('#tail-rows tr', (trs) => trs.map((tr) => {
    const v = JSON.parse(tr.querySelector('td.value').textContent);
    return `${tr.dataset.partition}:${tr.dataset.offset}:${v.level} ${v.msg}`;
  }));
  assert.deepEqual(rows.sort(), ['0:1:ERROR disk full', '0:3:ERROR timeout', '0:5:ERROR last', '1:1:ERROR on p1'], 'only matches, at their own offsets');
  await shot(page, 'tail-filtered');

  // The plugins page counts the filter's work (Esc leaves the parameters field first).
  await page.keyboard.press('Escape');
  await page.keyboard.press('g');
  await page.keyboard.press('p');
  const row = await page.waitForSelector('#plugins-table tr[data-plugin="json-field"]');
  await eventually('records through the filter', async () => Number((await row.$eval('td:nth-child(8)', (td) => td.textContent)).replace(/,/g, '')) >= 8);
  await close();
});

test('client: plugin admin; filters on fetch and subscribe; a filtered group member commits past the records it never saw', async () => {
  await ensurePlugin('json-field', 'json_filter');
  await broker.api('POST', '/v1/topics', { name: 'audit', partitions: 1 });
  const event = (kind, n) => ({ value: JSON.stringify({ kind, n }) });
  const n = (r) => JSON.parse(r.value).n;
  await broker.api('POST', '/v1/topics/audit/records', { records: [event('ok', 0), event('ALERT', 1), event('ok', 2), event('ok', 3), event('ALERT', 4), event('ok', 5)] });
  const node = await Sluice.connect(`ws://${broker.addr}/v1/ws`, { WebSocket });
  const alerts = { plugin: 'json-field', params: { field: 'kind', op: '==', value: 'ALERT' } };

  const fetched = await node.fetch('audit', 0, 0, { filter: alerts });
  assert.deepEqual(fetched.records.map((r) => r.offset), [1, 4]);
  assert.equal(fetched.nextOffset, 6);
  await assert.rejects(node.subscribe({ topic: 'audit', filter: 'no-such-plugin' }), { name: 'SluiceError', code: 'unknown_plugin' });
  await assert.rejects(node.subscribe({ topic: 'audit', filter: { params: {} } }), { code: 'bad_request' });
  await assert.rejects(node.subscribe({ topic: 'audit', filter: { plugin: 'json-field', params: {} } }), { code: 'invalid_plugin' });

  // Plugin administration over the WebSocket.
  const wasm = new Uint8Array(readFileSync(pluginFile('json_filter')));
  const up = await node.uploadPlugin('over-100', wasm);
  assert.equal(up.kind, 'filter');
  assert.equal(up.size_bytes, wasm.length);
  assert.ok((await node.listPlugins()).some((p) => p.name === 'over-100'));
  assert.equal((await node.describePlugin('over-100')).sha256, up.sha256);
  await node.deletePlugin('over-100');
  await assert.rejects(node.describePlugin('over-100'), { code: 'unknown_plugin' });
  await assert.rejects(node.uploadPlugin('junk', new Uint8Array([1, 2, 3])), { code: 'invalid_plugin' });

  const member = await node.joinGroup({ group: 'auditors', topics: ['audit'], from: 'earliest', autoCommit: false, filter: alerts });
  const it = member[Symbol.asyncIterator]();
  assert.equal(n((await it.next()).value), 1);
  assert.equal(n((await it.next()).value), 4);
  // A read the filter drops entirely still moves the member's position.
  const waiting = it.next();
  await broker.api('POST', '/v1/topics/audit/records', { records: [event('ok', 6), event('ok', 7)] });
  const committed = async () => (await broker.api('GET', '/v1/groups/auditors/offsets')).body.offsets.find((o) => o.partition === 0)?.offset;
  await eventually('a commit past the dropped records', async () => {
    await member.commit();
    return (await committed()) === 8;
  });
  await broker.api('POST', '/v1/topics/audit/records', { records: [event('ALERT', 8)] });
  const next = (await waiting).value;
  assert.equal(`${next.offset}:${n(next)}`, '8:8');
  await member.commit();
  assert.equal(await committed(), 9);
  await member.close();
  await node.close();
});

/** A consumer-group member on the Rust SDK, in a process of its own (server/tests/browser_member.rs):
 *  it prints a JSON line per record, and commits and leaves when its stdin closes. */
function rustMember(topic, group) {
  const proc = spawn(RUST_MEMBER, ['--ignored', '--exact', 'rust_group_member', '--nocapture'], {
    env: { ...process.env, SLUICE_URL: broker.url, SLUICE_TOPIC: topic, SLUICE_GROUP: group },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const got = [];
  let output = '';
  createInterface({ input: proc.stdout }).on('line', (line) => {
    output += `${line}\n`;
    if (!line.startsWith('{')) return; // the test harness's own lines
    const m = JSON.parse(line);
    if (m.value !== undefined) got.push(m);
  });
  proc.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  return { proc, got, exited, output: () => output };
}

test('a console page and a Rust consumer (Rust SDK), members of one group, split the partitions', async () => {
  await broker.api('POST', '/v1/topics', { name: 'shared', partitions: 4 });
  const rust = rustMember('shared', 'mixed');
  try {
    const described = async () => (await broker.api('GET', '/v1/groups/mixed')).body;
    const owned = (m) => m.assigned.flatMap((l) => l.partitions);
    await eventually('the Rust member to own all 4 partitions', async () => {
      const d = await described();
      return d.members?.length === 1 && owned(d.members[0]).length === 4;
    }, 30000);
    const rustId = (await described()).members[0].member_id;

    const { page, close } = await openPage('/#/topics/shared');
    await page.waitForSelector('#tail-status[data-state="live"]');
    await page.selectOption('#tail-mode', 'group');
    await page.fill('#tail-group', 'mixed');
    await page.selectOption('#tail-from', 'earliest');
    await page.click('#tail-start');
    const pageParts = async () => {
      const v = await page.getAttribute('#tail-assignment', 'data-partitions');
      return v ? v.split(',').map(Number) : [];
    };
    let theirs = [];
    await eventually('the page and the Rust member to split 2 + 2', async () => {
      const d = await described();
      const r = d.members.find((m) => m.member_id === rustId);
      theirs = r ? owned(r) : [];
      return d.state === 'stable' && d.members.length === 2 && theirs.length === 2 && (await pageParts()).length === 2;
    }, 20000);
    const mine = await pageParts();
    assert.deepEqual([...mine, ...theirs].sort(), [0, 1, 2, 3], `disjoint and complete: page ${mine}, rust ${theirs}`);

    // Every record reaches exactly the member that owns its partition.
    await broker.api('POST', '/v1/topics/shared/records', { records: Array.from({ length: 8 }, (_, i) => ({ value: `shared-${i}`, partition: i % 4 })) });
    await eventually('the page to show its 4 records', async () => (await page.$$('#tail-rows tr')).length === 4);
    await eventually('the Rust member to print its 4 records', async () => rust.got.length === 4);
    const pageRows = await page.$$eval('#tail-rows tr', (trs) => trs.map((tr) => Number(tr.dataset.partition)));
    assert.ok(pageRows.every((p) => mine.includes(p)), `page rows ${pageRows} outside ${mine}`);
    assert.ok(rust.got.every((r) => theirs.includes(r.partition)), `rust records ${rust.got.map((r) => r.partition)} outside ${theirs}`);
    const values = [...(await page.$$eval('#tail-rows td.value', (tds) => tds.map((td) => td.textContent))), ...rust.got.map((r) => r.value)];
    assert.deepEqual(values.sort(), Array.from({ length: 8 }, (_, i) => `shared-${i}`).sort(), 'each record once');
    await shot(page, 'group-member-with-rust');

    // The Rust member commits and leaves: the page takes its partitions over from the commits,
    // showing nothing twice (a new record per handed-over partition comes after any repeat).
    rust.proc.stdin.end();
    assert.equal(await within(20000, 'the Rust member to leave and exit', rust.exited), 0, rust.output());
    await eventually('the page to own all 4 partitions', async () => (await pageParts()).length === 4, 20000);
    await broker.api('POST', '/v1/topics/shared/records', { records: theirs.map((partition) => ({ value: 'after', partition })) });
    for (const p of theirs) await page.waitForSelector(`#tail-rows tr[data-partition="${p}"][data-offset="2"]`);
    assert.equal((await page.$$('#tail-rows tr')).length, 6, 'its 4 records and the 2 new ones, nothing twice');
    await shot(page, 'group-member-after-rust');
    await close();
  } finally {
    if (rust.proc.exitCode === null && rust.proc.signalCode === null) rust.proc.kill('SIGKILL');
  }
});
