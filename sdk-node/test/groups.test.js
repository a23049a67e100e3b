// Consumer groups across processes, and broadcast consumers.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';

import { Sluice } from '../dist/index.js';
import { startBroker, topicName } from './broker.js';

let broker;
let client;

before(async () => {
  broker = await startBroker();
  client = await Sluice.connect(broker.url);
});

after(async () => {
  await client?.close();
  await broker?.stop();
});

/** Conditions waited for; checked whenever any member prints. */
const waiters = new Set();

/** Waits until `f()` holds; rejects if a member process exits first. */
function until(f) {
  return new Promise((resolve, reject) => {
    const check = (exited) => {
      if (f()) {
        waiters.delete(check);
        resolve();
      } else if (exited !== undefined) {
        waiters.delete(check);
        reject(new Error(`a member exited (${exited}) while waiting`));
      }
    };
    waiters.add(check);
    check();
  });
}

/** A member process; `state` follows what it printed. */
function member(topic, group) {
  const script = fileURLToPath(new URL('./fixtures/member.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, broker.url, topic, group], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const state = { assignment: [], records: [], closed: false };
  createInterface({ input: child.stdout }).on('line', (line) => {
    const msg = JSON.parse(line);
    if (msg.assignment) state.assignment = msg.assignment;
    if (msg.records) state.records.push(...msg.records);
    if (msg.closed) state.closed = true;
    for (const w of [...waiters]) w();
  });
  const exited = once(child, 'exit');
  child.once('exit', (code) => {
    for (const w of [...waiters]) w(code);
  });
  return { child, state, exited };
}

test('a group splits the partitions between two Node processes, each record read once', async () => {
  const topic = topicName('grp');
  const group = topicName('group');
  await client.admin().createTopic({ name: topic, partitions: 4 });
  const a = member(topic, group);
  await until(() => a.state.assignment.length === 4);
  const b = member(topic, group);
  // Both members hold partitions, together all four, none twice.
  const split = () => {
    const all = [...a.state.assignment, ...b.state.assignment];
    return a.state.assignment.length > 0 && b.state.assignment.length > 0 && all.length === 4 && new Set(all).size === 4;
  };
  await until(split);

  const n = 400;
  const producer = client.producer();
  await Promise.all(Array.from({ length: n }, (_, i) => producer.send({ topic, key: `k${i}`, value: `v${i}` })));
  await producer.close();

  const total = () => a.state.records.length + b.state.records.length >= n;
  await until(total);
  a.child.stdin.end('stop\n');
  b.child.stdin.end('stop\n');
  const [[codeA], [codeB]] = await Promise.all([a.exited, b.exited]);
  assert.equal(codeA, 0);
  assert.equal(codeB, 0);
  assert.ok(a.state.closed && b.state.closed);

  const seen = new Set();
  for (const [m, other] of [
    [a, b],
    [b, a],
  ]) {
    assert.ok(m.state.records.length > 0, 'each member read records');
    for (const [partition, offset, value] of m.state.records) {
      assert.ok(m.state.assignment.includes(partition), `partition ${partition} is not this member's`);
      assert.ok(!other.state.assignment.includes(partition));
      const id = `${partition}/${offset}`;
      assert.ok(!seen.has(id), `${id} read twice`);
      seen.add(id);
      assert.match(value, /^v\d+$/);
    }
  }
  assert.equal(seen.size, n);

  // The members committed what they read: the group's next member starts after it.
  const late = await client.consumer({ topics: [topic], group, autoOffsetReset: 'earliest', autoCommitIntervalMs: false });
  while ((await late.assignment()).length < 4) assert.deepEqual(await late.poll({ timeoutMs: 20 }), []);
  const positions = await late.positions();
  assert.equal(
    positions.reduce((sum, p) => sum + p.offset, 0),
    n,
  );
  assert.deepEqual(await late.poll({ timeoutMs: 100 }), []);

  // Admin sees the group, its members and lag.
  const admin = client.admin();
  assert.ok((await admin.listGroups()).some((g) => g.group === group && g.members === 1));
  const described = await admin.describeGroup(group);
  assert.equal(described.members.length, 1);
  assert.equal(described.partitions.length, 4);
  for (const p of described.partitions) assert.equal(p.lag, 0);
  await late.close();

  // Once empty, the group's offsets can be reset and the group deleted.
  const committed = await admin.groupOffsets(group);
  assert.equal(
    committed.reduce((sum, o) => sum + o.offset, 0),
    n,
  );
  const reset = await admin.resetOffsets(group, 'earliest');
  assert.deepEqual(
    reset.map((o) => o.offset),
    [0, 0, 0, 0],
  );
  await admin.deleteGroup(group);
  assert.ok(!(await admin.listGroups()).some((g) => g.group === group));
  await assert.rejects(admin.describeGroup(group), (e) => e.code === 'unknown_group');
});

test('broadcast consumers each read every partition', async () => {
  const topic = topicName('bcast');
  await client.admin().createTopic({ name: topic, partitions: 3 });
  const c1 = await client.consumer({ topics: [topic], start: 'earliest' });
  const c2 = await client.consumer({ topics: [topic], start: 'earliest' });
  const producer = client.producer();
  const n = 90;
  await Promise.all(Array.from({ length: n }, (_, i) => producer.send({ topic, key: `k${i}`, value: `v${i}` })));
  await producer.close();
  for (const c of [c1, c2]) {
    const values = new Set();
    const partitions = new Set();
    for await (const r of c) {
      values.add(r.value.toString());
      partitions.add(r.partition);
      if (values.size === n) break;
    }
    assert.equal(partitions.size, 3);
    assert.deepEqual((await c.assignment()).length, 3);
    await c.close();
  }
});

test('commit() commits what iteration yielded, not what was prefetched', async () => {
  const topic = topicName('commit');
  const group = topicName('g');
  await client.admin().createTopic(topic);
  const producer = client.producer();
  await producer.sendBatch(Array.from({ length: 50 }, (_, i) => ({ topic, value: `v${i}` })));
  await producer.close();
  const c = await client.consumer({ topics: [topic], group, autoOffsetReset: 'earliest', autoCommitIntervalMs: false });
  let i = 0;
  for await (const r of c) {
    if (++i === 10) {
      assert.equal(r.offset, 9);
      break;
    }
  }
  await c.commit();
  await c.close();
  const next = await client.consumer({ topics: [topic], group, autoOffsetReset: 'earliest' });
  for await (const r of next) {
    assert.equal(r.offset, 10);
    break;
  }
  await next.close();
});
