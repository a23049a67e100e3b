// Reads a topic from the start, alone ("broadcast": every partition) or, given a group, as a
// member of a consumer group. Stops on Ctrl-C.
//
//   node examples/node/consumer.mjs [URL] [TOPIC] [GROUP]
import { Sluice } from '../../sdk-node/dist/index.js';

const url = process.argv[2] ?? 'http://127.0.0.1:9400';
const topic = process.argv[3] ?? 'orders';
const group = process.argv[4];

const client = await Sluice.connect(url);
const consumer = await client.consumer(
  group ? { topics: [topic], group, autoOffsetReset: 'earliest' } : { topics: [topic], start: 'earliest' },
);
process.once('SIGINT', () => void client.close()); // ends the loop below; commits in a group

for await (const r of consumer) {
  console.log(`${r.topic}/${r.partition}@${r.offset} key=${r.key?.toString()} value=${r.value?.toString()}`);
}
console.log('closed');
