"""The asyncio API: concurrent sends share batches; `async for` reads.

    python examples/python/asyncio_example.py [URL] [TOPIC]
"""

import asyncio
import sys

import sluice
import sluice.aio

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9400"
topic = sys.argv[2] if len(sys.argv) > 2 else "orders-async"


async def main() -> None:
    async with sluice.aio.Admin(url) as admin:
        try:
            await admin.create_topic(topic, partitions=2)
        except sluice.errors.TopicExistsError:
            pass

    async with sluice.aio.Producer(url) as producer:
        sent = await asyncio.gather(*(producer.send(topic, f"hello {i}") for i in range(100)))
        print("last offsets:", sorted({(m.partition, m.offset) for m in sent})[-2:])

    async with sluice.aio.Consumer(url, topic, auto_offset_reset="earliest") as consumer:
        count = 0
        while (record := await consumer.poll(timeout=1.0)) is not None:
            count += 1
        print(f"read {count} records; position of partition 0:",
              await consumer.position(topic, 0))


asyncio.run(main())
