// Failures reach JavaScript as SluiceError subclasses carrying the broker's code.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, test } from 'node:test';

import {
  BrokerError,
  ClosedError,
  ConnectionError,
  InvalidInputError,
  QueueFullError,
  SluiceError,
  Sluice,
} from '../dist/index.js';
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

const brokerCode = (code) => (e) => {
  assert.ok(e instanceof BrokerError, `${e.name}: ${e.message}`);
  assert.ok(e instanceof SluiceError && e instanceof Error);
  assert.equal(e.code, code);
  assert.equal(e.kind, 'broker');
  return true;
};

test('unknown topic: send and consumer reject with unknown_topic', async () => {
  const producer = client.producer();
  await assert.rejects(producer.send({ topic: 'no-such-topic', value: 'x' }), brokerCode('unknown_topic'));
  await producer.close();
  await assert.rejects(client.consumer({ topics: ['no-such-topic'] }), brokerCode('unknown_topic'));
  await assert.rejects(client.admin().describeTopic('no-such-topic'), brokerCode('unknown_topic'));
});

test('admin errors carry the broker code', async () => {
  const topic = topicName();
  await client.admin().createTopic(topic);
  await assert.rejects(client.admin().createTopic(topic), brokerCode('topic_exists'));
  await assert.rejects(client.admin().createTopic('bad name!'), brokerCode('invalid_topic_name'));
  await assert.rejects(
    client.admin().createTopic({ name: topicName(), configs: { 'retention.ms': 'soon' } }),
    brokerCode('invalid_config'),
  );
});

test('bad input is refused before anything is sent', async () => {
  const topic = topicName();
  await client.admin().createTopic({ name: topic, partitions: 2 });
  const producer = client.producer();
  const invalid = (e) => e instanceof InvalidInputError && e.code === 'invalid_input' && !e.retriable;
  await assert.rejects(producer.send({ topic, value: 42 }), invalid);
  await assert.rejects(producer.send({ value: 'no topic' }), invalid);
  await assert.rejects(producer.send({ topic, value: 'x', partition: -1 }), invalid);
  await assert.rejects(producer.send({ topic, value: 'x', headers: { h: 1 } }), invalid);
  // Partition 2 of a 2-partition topic: refused by the producer, with the reason.
  await assert.rejects(producer.send({ topic, value: 'x', partition: 2 }), (e) => {
    assert.ok(e instanceof InvalidInputError);
    assert.match(e.message, /partition/);
    return true;
  });
  // A record larger than the topic's max.message.bytes.
  const small = topicName();
  await client.admin().createTopic({ name: small, configs: { 'max.message.bytes': '1024' } });
  await assert.rejects(producer.send({ topic: small, value: Buffer.alloc(4096) }), invalid);
  // The good records of the same tick still go through.
  const [ok, bad] = await Promise.allSettled([
    producer.send({ topic, value: 'fine' }),
    producer.send({ topic, value: 'x', partition: 9 }),
  ]);
  assert.equal(ok.status, 'fulfilled');
  assert.equal(bad.status, 'rejected');
  await producer.close();
  await assert.rejects(client.consumer({ topics: [topic], start: 'middle' }), invalid);
  await assert.rejects(client.consumer({ topics: [] }), invalid);
  await assert.rejects(client.consumer({ topics: [topic], group: 'g', assignor: 'random' }), invalid);
  await assert.rejects(Sluice.connect('ftp://example'), (e) => e instanceof SluiceError);
});

test('closed producers and consumers reject with ClosedError', async () => {
  const topic = topicName();
  await client.admin().createTopic(topic);
  const producer = client.producer();
  await producer.close();
  await producer.close();
  await assert.rejects(producer.send({ topic, value: 'x' }), (e) => e instanceof ClosedError && e.code === 'closed');
  const consumer = await client.consumer({ topics: [topic] });
  await consumer.close();
  await assert.rejects(consumer.seek(topic, 0, 0), ClosedError);
  for await (const r of consumer) assert.fail(`a closed consumer yielded ${r.offset}`);
});

test('a full send queue refuses more instead of growing', async () => {
  const topic = topicName();
  await client.admin().createTopic(topic);
  // The native producer buffers 4 KiB at most, so the first 64 KiB wait in the queue in
  // front of it, and the queue takes 16 KiB.
  const producer = client.producer({ bufferBytes: 4096, maxQueuedBytes: 16384 });
  const value = Buffer.alloc(1024);
  const first = producer.sendBatch(Array.from({ length: 64 }, () => ({ topic, value })));
  await assert.rejects(producer.sendBatch([{ topic, value }]), (e) => {
    assert.ok(e instanceof QueueFullError, `${e.name}: ${e.message}`);
    assert.equal(e.code, 'queue_full');
    assert.equal(e.retriable, true);
    return true;
  });
  assert.equal((await first).length, 64);
  // Once the queue drained, sending works again.
  assert.equal((await producer.sendBatch([{ topic, value }]))[0].offset, 64);
  await producer.close();
});

test('no broker: connect rejects with a retriable ConnectionError', async () => {
  // A port that was just free: nothing listens there.
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  await assert.rejects(Sluice.connect(`http://127.0.0.1:${port}`, { connectTimeoutMs: 5000 }), (e) => {
    assert.ok(e instanceof ConnectionError, `${e.name}: ${e.message}`);
    assert.equal(e.code, 'connection');
    assert.equal(e.retriable, true);
    return true;
  });
});

test('broker gone: requests fail with retriable errors instead of hanging', async () => {
  const own = await startBroker();
  const c = await Sluice.connect(own.url, { requestTimeoutMs: 2000, reconnectBackoffMaxMs: 200 });
  const topic = topicName();
  await c.admin().createTopic(topic);
  await own.stop();
  await assert.rejects(c.admin().listTopics(), (e) => {
    assert.ok(e instanceof SluiceError, String(e));
    assert.ok(['connection', 'timeout'].includes(e.code), e.code);
    assert.equal(e.retriable, true);
    return true;
  });
  const producer = c.producer({ deliveryTimeoutMs: 1500 });
  await assert.rejects(producer.send({ topic, value: 'x' }), (e) => e instanceof SluiceError && e.retriable);
  await c.close();
});
