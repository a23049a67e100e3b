"""Produce a few records, with keys and headers, and print where they went.

    python examples/python/producer.py [URL] [TOPIC]
"""

import sys

import sluice

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9400"
topic = sys.argv[2] if len(sys.argv) > 2 else "orders"

with sluice.Admin(url) as admin:
    try:
        admin.create_topic(topic, partitions=3)
    except sluice.errors.TopicExistsError:
        pass

with sluice.Producer(url, acks="all", linger_ms=5) as producer:
    futures = [
        producer.send(topic, f"order {i}", key=f"user-{i % 3}", headers={"source": "example"})
        for i in range(10)
    ]
    for future in futures:
        metadata = future.result(timeout=30)
        print(f"{metadata.topic}/{metadata.partition}@{metadata.offset}")
    # Fire and forget: cheaper, failures surface at flush() or close().
    for i in range(1000):
        producer.produce(topic, f"event {i}")
    producer.flush()
    print("sent 1010 records")
