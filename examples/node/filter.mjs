// Uploads a filter plugin and reads a topic through it: the broker runs the plugin on every
// read and sends only the records it keeps (with their original offsets).
//
//   node examples/node/filter.mjs URL PLUGIN.wasm TOPIC [KEY=VALUE ...]
//
// With the example JSON filter (cd plugins && cargo build --release --target
// wasm32-unknown-unknown), records whose `amount` is over 100:
//
//   node examples/node/filter.mjs http://127.0.0.1:9400 \
//     plugins/target/wasm32-unknown-unknown/release/json_filter.wasm orders field=amount 'op=>' value=100
import { readFileSync } from 'node:fs';

import { Sluice } from '../../sdk-node/dist/index.js';

const [url, wasm, topic, ...pairs] = process.argv.slice(2);
if (!url || !wasm || !topic) {
  console.error('usage: filter.mjs URL PLUGIN.wasm TOPIC [KEY=VALUE ...]');
  process.exit(2);
}
const params = Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));

const client = await Sluice.connect(url);
const plugin = await client.admin().uploadPlugin('example-filter', readFileSync(wasm));
console.log(`uploaded ${plugin.name} (${plugin.kind}, ${plugin.sizeBytes} bytes)`);

const consumer = await client.consumer({
  topics: [topic],
  start: 'earliest',
  filter: { name: 'example-filter', params },
});
process.once('SIGINT', () => void client.close());
for await (const r of consumer) {
  console.log(`${r.partition}@${r.offset}: ${r.value?.toString()}`);
}
