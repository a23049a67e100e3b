// Produce throughput from Node: N records of SIZE bytes to one topic, through the public API.
//
//   node bench/produce.mjs [--url URL] [--records N] [--size BYTES] [--partitions P]
//                          [--mode send|batch] [--window RECORDS] [--acks 0|1|all]
//
// Without --url it starts `$SLUICE_BIN serve` (use a release build) with durability=never in a
// temporary directory. `send` calls producer.send() per record (records of the same tick cross
// into native code together); `batch` calls producer.sendBatch() with 1024 records at a time.
// At most --window records are unacknowledged at any time. Prints one JSON line.
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { Sluice } from '../dist/index.js';
import { startBroker, topicName } from '../test/broker.js';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    records: { type: 'string', default: '1000000' },
    size: { type: 'string', default: '1024' },
    partitions: { type: 'string', default: '1' },
    mode: { type: 'string', default: 'send' },
    window: { type: 'string', default: '65536' },
    acks: { type: 'string', default: '1' },
  },
});
const records = Number(a.records);
const size = Number(a.size);
const window = Number(a.window);
const chunk = 1024;

const broker = a.url ? null : await startBroker(['--log-default', 'durability=never']);
const client = await Sluice.connect(a.url ?? broker.url);
const topic = topicName('bench');
await client.admin().createTopic({ name: topic, partitions: Number(a.partitions) });
const producer = client.producer({ acks: a.acks === 'all' ? 'all' : Number(a.acks) });
const value = Buffer.alloc(size, 'x');

const inFlight = [];
let unacked = 0;
const elu0 = performance.eventLoopUtilization();
const start = process.hrtime.bigint();
for (let sent = 0; sent < records; ) {
  const n = Math.min(chunk, records - sent);
  let done;
  if (a.mode === 'batch') {
    const batch = new Array(n);
    for (let i = 0; i < n; i++) batch[i] = { topic, value };
    done = producer.sendBatch(batch);
  } else {
    const sends = new Array(n);
    for (let i = 0; i < n; i++) sends[i] = producer.send({ topic, value });
    done = Promise.all(sends);
  }
  inFlight.push({ done, n });
  unacked += n;
  sent += n;
  while (unacked > window) {
    const oldest = inFlight.shift();
    await oldest.done;
    unacked -= oldest.n;
  }
}
for (const f of inFlight) await f.done;
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
// How busy the JavaScript thread was: near 1 means it, not the native side, is the limit.
const elu = performance.eventLoopUtilization(elu0).utilization;
await client.close();
await broker?.stop();

console.log(
  JSON.stringify({
    mode: a.mode,
    records,
    record_bytes: size,
    partitions: Number(a.partitions),
    acks: a.acks,
    seconds: Number(seconds.toFixed(3)),
    records_per_s: Math.round(records / seconds),
    mb_per_s: Number(((records * size) / seconds / 1e6).toFixed(1)),
    js_thread_busy: Number(elu.toFixed(2)),
  }),
);
