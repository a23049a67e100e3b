"""Consume as a member of a consumer group; start several to share the partitions.
Ctrl-C stops it (the consumer then commits its positions and leaves the group).

    python examples/python/consumer.py [URL] [TOPIC] [GROUP]
"""

import sys

import sluice

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9400"
topic = sys.argv[2] if len(sys.argv) > 2 else "orders"
group = sys.argv[3] if len(sys.argv) > 3 else "example"

with sluice.Consumer(url, topic, group=group, auto_offset_reset="earliest") as consumer:
    try:
        for record in consumer:
            key = record.key.decode() if record.key is not None else None
            print(f"{record.partition}@{record.offset} {key}: {record.value!r}")
    except KeyboardInterrupt:
        print("stopping; assigned were", consumer.assignment())
