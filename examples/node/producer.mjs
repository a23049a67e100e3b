// Sends a few records and prints where they were written.
//
//   node examples/node/producer.mjs [URL] [TOPIC]
//
// Needs the package built: `cd sdk-node && npm install`.
import { BrokerError, Sluice } from '../../sdk-node/dist/index.js';

const url = process.argv[2] ?? 'http://127.0.0.1:9400';
const topic = process.argv[3] ?? 'orders';

const client = await Sluice.connect(url);
try {
  await client.admin().createTopic({ name: topic, partitions: 3 });
} catch (e) {
  if (!(e instanceof BrokerError && e.code === 'topic_exists')) throw e;
}

const producer = client.producer({ lingerMs: 5 });
const sent = await Promise.all(
  Array.from({ length: 10 }, (_, i) =>
    producer.send({
      topic,
      key: `user-${i % 3}`,
      value: JSON.stringify({ order: i, amount: 10 * i }),
      headers: { source: 'examples/node' },
    }),
  ),
);
for (const m of sent) console.log(`${m.topic}/${m.partition}@${m.offset}`);
await client.close(); // closes the producer first: nothing buffered is lost
