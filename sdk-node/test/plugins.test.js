// Filter plugins from the plugins/ workspace ($SLUICE_PLUGINS_DIR, built by ci.sh), uploaded
// and run by the broker on a consumer's reads; plugin administration and its errors.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { BrokerError, Sluice } from '../dist/index.js';
import { startBroker, topicName } from './broker.js';

let broker;
let client;

function plugin(name) {
  const dir = process.env.SLUICE_PLUGINS_DIR;
  if (!dir) throw new Error('set SLUICE_PLUGINS_DIR to the built example plugins (sdk-node/ci.sh does)');
  return readFileSync(join(dir, `${name}.wasm`));
}

before(async () => {
  broker = await startBroker();
  client = await Sluice.connect(broker.url);
});

after(async () => {
  await client?.close();
  await broker?.stop();
});

const code = (c) => (e) => e instanceof BrokerError && e.code === c;

test('a filter plugin with params keeps only matching records, with their offsets', async () => {
  const admin = client.admin();
  const uploaded = await admin.uploadPlugin('big-amounts', plugin('json_filter'));
  assert.equal(uploaded.name, 'big-amounts');
  assert.equal(uploaded.kind, 'filter');
  assert.equal(uploaded.sha256.length, 64);

  const topic = topicName('filter');
  await admin.createTopic(topic);
  const producer = client.producer();
  const values = Array.from({ length: 20 }, (_, i) => JSON.stringify({ amount: i }));
  values.splice(5, 0, 'not json');
  await producer.sendBatch(values.map((value) => ({ topic, value })));
  await producer.close();

  const filter = { name: 'big-amounts', params: { field: 'amount', op: '>', value: '14' } };
  const consumer = await client.consumer({ topics: [topic], start: 'earliest', filter });
  const got = [];
  for await (const r of consumer) {
    got.push([r.offset, JSON.parse(r.value.toString()).amount]);
    if (got.length === 5) break;
  }
  assert.deepEqual(got, [
    [16, 15],
    [17, 16],
    [18, 17],
    [19, 18],
    [20, 19],
  ]);
  // Nothing else passes the filter.
  assert.deepEqual(await consumer.poll({ timeoutMs: 200 }), []);
  await consumer.close();

  const described = await admin.describePlugin('big-amounts');
  assert.ok(described.records >= 21, `the plugin saw ${described.records} records`);
  assert.deepEqual(
    (await admin.listPlugins()).map((p) => p.name),
    ['big-amounts'],
  );

  // A group consumer filters too.
  const member = await client.consumer({
    topics: [topic],
    group: topicName('fg'),
    autoOffsetReset: 'earliest',
    filter: { name: 'big-amounts', params: { field: 'amount', op: '<', value: '2' } },
  });
  const small = [];
  for await (const r of member) {
    small.push(r.offset);
    if (small.length === 2) break;
  }
  assert.deepEqual(small, [0, 1]);
  await member.close();

  await admin.deletePlugin('big-amounts');
  await assert.rejects(admin.describePlugin('big-amounts'), code('unknown_plugin'));
});

test('plugin errors: a module that is not WebAssembly, an unknown filter, bad params', async () => {
  const admin = client.admin();
  await assert.rejects(admin.uploadPlugin('junk', Buffer.from('definitely not wasm')), code('invalid_plugin'));
  await assert.rejects(admin.uploadPlugin('junk', 'text'), (e) => e.code === 'invalid_input');
  const topic = topicName('pf');
  await admin.createTopic(topic);
  await assert.rejects(
    client.consumer({ topics: [topic], filter: { name: 'no-such-plugin' } }),
    code('unknown_plugin'),
  );
  await admin.uploadPlugin('strict', plugin('json_filter'));
  // json_filter needs `field` and `op`: its init fails, and so does the subscription.
  await assert.rejects(client.consumer({ topics: [topic], filter: { name: 'strict', params: {} } }), (e) => {
    assert.ok(e instanceof BrokerError, String(e));
    assert.equal(e.code, 'invalid_plugin');
    assert.match(e.message, /field/);
    return true;
  });
});
