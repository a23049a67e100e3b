"""Upload the example keyword filter plugin and consume only the records it keeps: the
filtering runs in the broker, so dropped records never cross the network.

    (cd plugins && cargo build --release --target wasm32-unknown-unknown)
    python examples/python/filter.py [URL] [PATH/TO/keyword_filter.wasm]
"""

import sys

import sluice

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9400"
wasm = sys.argv[2] if len(sys.argv) > 2 else \
    "plugins/target/wasm32-unknown-unknown/release/keyword_filter.wasm"
topic = "logs"

with sluice.Admin(url) as admin:
    plugin = admin.upload_plugin("grep", wasm)
    print(f"uploaded {plugin['name']} ({plugin['kind']}, {plugin['size_bytes']} bytes)")
    try:
        admin.create_topic(topic)
    except sluice.errors.TopicExistsError:
        pass

with sluice.Producer(url) as producer:
    for i in range(100):
        producer.produce(topic, f"{'ERROR' if i % 10 == 0 else 'INFO'} request {i}")

with sluice.Consumer(url, topic, auto_offset_reset="earliest",
                     filter="grep", filter_params={"keyword": "ERROR"}) as consumer:
    while (record := consumer.poll(timeout=1.0)) is not None:
        print(record.offset, (record.value or b"").decode())
