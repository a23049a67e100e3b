// A Node process using the client ends by itself once its work is done: after close(), and
// also when the application forgets to close (the native side holds no event-loop handle).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import { startBroker } from './broker.js';

let broker;

before(async () => {
  broker = await startBroker();
});

after(async () => {
  await broker?.stop();
});

async function run(mode) {
  const script = fileURLToPath(new URL('./fixtures/lifecycle.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, broker.url, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const [code, signal] = await once(child, 'exit');
  return { code, signal, out };
}

// A process that does not end fails these tests by their timeout.
test('a process that closes its client exits by itself', { timeout: 60_000 }, async () => {
  const { code, out } = await run('close');
  assert.equal(out.trim(), 'done');
  assert.equal(code, 0);
});

test('a process that forgets to close exits by itself too', { timeout: 60_000 }, async () => {
  const { code, out } = await run('forget');
  assert.equal(out.trim(), 'done');
  assert.equal(code, 0);
});
