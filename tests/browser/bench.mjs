// How fast the browser client consumes in headless Chromium: records/s and MB/s of a
// subscription from the start of a filled topic, plain and through the keyword filter plugin.
// Not a test (nothing is asserted about speed); figures go to docs/PERFORMANCE.md.
//
//   SLUICE_BIN=$CARGO_TARGET_DIR/release/sluice PLUGINS_DIR=... node tests/browser/bench.mjs [records] [record_bytes]
//
// Needs what run.sh installs (chromium, npm ci) and the example plugins built.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(root, process.env.CARGO_TARGET_DIR) : join(root, 'target');
const BIN = process.env.SLUICE_BIN || join(targetDir, 'release', 'sluice');
const PLUGINS_DIR = process.env.PLUGINS_DIR || join(targetDir, 'plugins', 'wasm32-unknown-unknown', 'release');
const RECORDS = Number(process.argv[2] || 200000);
const RECORD_BYTES = Number(process.argv[3] || 100);
const PER_REQUEST = 1000;

const dir = mkdtempSync(join(tmpdir(), 'sluice-browser-bench-'));
const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SLUICE_LOG: 'warn' } });
const addr = await new Promise((ok, fail) => {
  proc.once('exit', (code) => fail(new Error(`sluice exited (${code})`)));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const m = /^sluice listening on http:\/\/(\S+) /.exec(line);
    if (m) ok(m[1]);
  });
});
const url = `http://${addr}`;
const call = async (method, path, body) => {
  const r = await fetch(url + path, { method, body });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
};

let browser;
try {
  await call('PUT', '/v1/plugins/keyword', readFileSync(join(PLUGINS_DIR, 'keyword_filter.wasm')));
  await call('POST', '/v1/topics', JSON.stringify({ name: 'bench', partitions: 4 }));
  // One record in 100 has the keyword.
  const pad = 'x'.repeat(Math.max(0, RECORD_BYTES - 12));
  for (let i = 0; i < RECORDS; i += PER_REQUEST) {
    const records = [];
    for (let j = i; j < Math.min(RECORDS, i + PER_REQUEST); j++) records.push({ value: `${j % 100 === 0 ? 'HIT' : 'r'}${String(j).padStart(9, '0')}${pad}`.slice(0, RECORD_BYTES) });
    await call('POST', '/v1/topics/bench/records', JSON.stringify({ records }));
  }

  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
  const page = await browser.newPage();
  await page.goto(`${url}/healthz`);
  const run = (filter, expect) => page.evaluate(async ({ filter, expect }) => {
    const { Sluice } = await import('/v1/client.js');
    const c = await Sluice.connect();
    const start = performance.now();
    const sub = await c.subscribe({ topic: 'bench', from: 'earliest', filter: filter || undefined });
    let n = 0;
    let bytes = 0;
    for await (const r of sub) {
      n++;
      bytes += r.value.length;
      if (n === expect) break;
    }
    const seconds = (performance.now() - start) / 1000;
    await c.close();
    return { n, bytes, seconds };
  }, { filter, expect });

  const report = (label, r) => console.log(`${label}: ${r.n} records (${(r.bytes / 1e6).toFixed(1)} MB of values) in ${r.seconds.toFixed(2)} s = ${Math.round(r.n / r.seconds)} records/s, ${(r.bytes / 1e6 / r.seconds).toFixed(1)} MB/s`);
  report('subscribe, no filter', await run(null, RECORDS));
  const f = await run({ plugin: 'keyword', params: { keyword: 'HIT' } }, Math.ceil(RECORDS / 100));
  report('subscribe, keyword filter (1 in 100 kept)', f);
  console.log(`  = ${Math.round(RECORDS / f.seconds)} records/s scanned by the broker for the page`);
} finally {
  await browser?.close();
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
