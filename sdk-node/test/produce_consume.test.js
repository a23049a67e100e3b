// Producing and consuming through the real broker: values, keys, headers, partitions, batches,
// seeks, polls; admin of topics.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { BrokerError, Sluice } from '../dist/index.js';
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

/** Takes `n` records from a consumer, in the order it yields them. */
async function take(consumer, n) {
  const out = [];
  if (n === 0) return out;
  for await (const r of consumer) {
    out.push(r);
    if (out.length === n) break;
  }
  return out;
}

test('records keep their value, key, headers and partition, in order per partition', async () => {
  const topic = topicName();
  await client.admin().createTopic({ name: topic, partitions: 3 });
  const producer = client.producer({ lingerMs: 5 });
  const sent = await Promise.all([
    producer.send({ topic, value: 'text value', key: 'user-1' }),
    producer.send({ topic, value: Buffer.from([0, 1, 2, 255]), partition: 2 }),
    producer.send({ topic, value: null, key: Buffer.from('k2'), headers: { trace: 'abc', empty: null } }),
    producer.send({
      topic,
      value: new Uint8Array([7, 7]),
      partition: 1,
      timestamp: 1_700_000_000_000,
      headers: [
        { key: 'dup', value: '1' },
        { key: 'dup', value: Buffer.from('2') },
      ],
    }),
  ]);
  assert.equal(sent[1].partition, 2);
  assert.equal(sent[3].partition, 1);
  assert.equal(sent[3].timestamp, 1_700_000_000_000);
  for (const m of sent) {
    assert.equal(m.topic, topic);
    assert.equal(typeof m.offset, 'number');
  }
  await producer.close();

  const consumer = await client.consumer({ topics: [topic], start: 'earliest' });
  const got = await take(consumer, 4);
  await consumer.close();
  const byValue = new Map(got.map((r) => [r.value === null ? 'null' : r.value.toString('hex'), r]));
  const text = byValue.get(Buffer.from('text value').toString('hex'));
  assert.equal(text.key.toString(), 'user-1');
  assert.equal(text.partition, sent[0].partition);
  assert.equal(text.offset, sent[0].offset);
  assert.ok(Buffer.isBuffer(text.value));
  const binary = byValue.get('000102ff');
  assert.equal(binary.partition, 2);
  assert.equal(binary.key, null);
  const tombstone = byValue.get('null');
  assert.equal(tombstone.key.toString(), 'k2');
  assert.deepEqual(
    tombstone.headers.map((h) => [h.key, h.value?.toString() ?? null]),
    [
      ['trace', 'abc'],
      ['empty', null],
    ],
  );
  const dup = byValue.get('0707');
  assert.equal(dup.timestamp, 1_700_000_000_000);
  assert.deepEqual(
    dup.headers.map((h) => [h.key, h.value.toString()]),
    [
      ['dup', '1'],
      ['dup', '2'],
    ],
  );
});

test('records with the same key land in one partition, in the order sent', async () => {
  const topic = topicName();
  await client.admin().createTopic({ name: topic, partitions: 4 });
  const producer = client.producer();
  const n = 3000;
  const sends = [];
  for (let i = 0; i < n; i++) sends.push(producer.send({ topic, key: `key-${i % 7}`, value: String(i) }));
  const metas = await Promise.all(sends);
  const partitionOfKey = new Map();
  for (let i = 0; i < n; i++) {
    const k = i % 7;
    if (!partitionOfKey.has(k)) partitionOfKey.set(k, metas[i].partition);
    assert.equal(metas[i].partition, partitionOfKey.get(k));
  }
  await producer.close();

  const consumer = await client.consumer({ topics: [topic], start: 'earliest', maxBatch: 64 });
  const got = await take(consumer, n);
  await consumer.close();
  const lastOfKey = new Map();
  for (const r of got) {
    const i = Number(r.value.toString());
    const k = i % 7;
    assert.ok((lastOfKey.get(k) ?? -1) < i, `key ${k}: ${i} came after ${lastOfKey.get(k)}`);
    lastOfKey.set(k, i);
  }
  assert.equal(new Set(got.map((r) => r.value.toString())).size, n);
});

test('sendBatch resolves every record; flush and acks 0', async () => {
  const topic = topicName();
  await client.admin().createTopic(topic);
  const producer = client.producer();
  const metas = await producer.sendBatch(Array.from({ length: 100 }, (_, i) => ({ topic, value: `v${i}` })));
  assert.deepEqual(
    metas.map((m) => m.offset),
    Array.from({ length: 100 }, (_, i) => i),
  );
  const pending = producer.send({ topic, value: 'flushed' });
  await producer.flush();
  assert.equal((await pending).offset, 100);
  await producer.close();

  const fireAndForget = client.producer({ acks: 0 });
  const m = await fireAndForget.send({ topic, value: 'no answer' });
  assert.equal(m.offset, null);
  await fireAndForget.close();
  const consumer = await client.consumer({ topics: [topic], start: { offset: 101 } });
  const [written] = await take(consumer, 1);
  await consumer.close();
  assert.equal(written.value.toString(), 'no answer');
});

test('seek moves a partition back; poll times out with no records', async () => {
  const topic = topicName();
  await client.admin().createTopic(topic);
  const producer = client.producer();
  await producer.sendBatch(Array.from({ length: 10 }, (_, i) => ({ topic, value: `r${i}` })));
  await producer.close();

  const consumer = await client.consumer({ topics: [topic], start: { offset: 4 } });
  const first = await take(consumer, 3);
  assert.deepEqual(
    first.map((r) => r.offset),
    [4, 5, 6],
  );
  await consumer.seek(topic, 0, 1);
  const again = await take(consumer, 2);
  assert.deepEqual(
    again.map((r) => r.value.toString()),
    ['r1', 'r2'],
  );
  assert.deepEqual(await consumer.positions(), [{ topic, partition: 0, offset: 3 }]);
  assert.deepEqual(await consumer.assignment(), [{ topic, partition: 0 }]);
  const rest = await consumer.poll({ max: 100, timeoutMs: 2000 });
  assert.deepEqual(
    rest.map((r) => r.offset),
    [3, 4, 5, 6, 7, 8, 9],
  );
  assert.deepEqual(await consumer.poll({ timeoutMs: 50 }), []);
  await consumer.close();
  assert.equal(await consumer.poll(), null);
});

test('a consumer waiting for records gets the ones produced later, and close ends iteration', async () => {
  const topic = topicName();
  await client.admin().createTopic(topic);
  const consumer = await client.consumer({ topics: [topic] });
  const seen = [];
  const loop = (async () => {
    for await (const r of consumer) seen.push(r.value.toString());
  })();
  const producer = client.producer();
  await producer.send({ topic, value: 'late' });
  await producer.close();
  while (seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
  await consumer.close();
  await loop;
  assert.deepEqual(seen, ['late']);
});

test('admin: create, list, describe, alter, delete topics', async () => {
  const admin = client.admin();
  const topic = topicName('admin');
  const created = await admin.createTopic({ name: topic, partitions: 2, configs: { 'retention.ms': '3600000' } });
  assert.equal(created.name, topic);
  assert.equal(created.partitions.length, 2);
  assert.equal(created.configs['retention.ms'], '3600000');
  const listed = (await admin.listTopics()).find((t) => t.name === topic);
  assert.deepEqual(listed, { name: topic, partitions: 2, internal: false });
  const altered = await admin.alterTopic(topic, { partitions: 3, configs: { 'retention.ms': null } });
  assert.equal(altered.partitions.length, 3);
  assert.notEqual(altered.configs['retention.ms'], '3600000');
  const described = await admin.describeTopic(topic);
  assert.equal(described.partitions.length, 3);
  assert.equal(described.partitions[0].logStartOffset, 0);
  await admin.deleteTopic(topic);
  await assert.rejects(admin.describeTopic(topic), (e) => e instanceof BrokerError && e.code === 'unknown_topic');
});
