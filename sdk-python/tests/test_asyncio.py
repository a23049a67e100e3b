"""The asyncio API (sluice.aio) against a real broker."""

from __future__ import annotations

import asyncio

import pytest

import sluice
import sluice.aio
from conftest import unique


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def test_send_and_async_for(url, topic4):
    async def main():
        async with sluice.aio.Producer(url) as producer:
            first = await producer.send(topic4, b"hello", key="k", headers={"h": "v"})
            assert isinstance(first, sluice.RecordMetadata) and first.offset == 0
            # Concurrent sends share batches.
            metadata = await asyncio.gather(
                *(producer.send(topic4, f"m{i}", partition=i % 4) for i in range(100))
            )
            assert sorted(m.partition for m in metadata) == sorted(i % 4 for i in range(100))
            for i in range(100):
                await producer.produce(topic4, f"f{i}")
            await producer.flush()
        assert producer.closed
        got = []
        async with sluice.aio.Consumer(url, topic4, auto_offset_reset="earliest") as consumer:
            async for record in consumer:
                got.append(record)
                if len(got) == 201:
                    break
            assert await consumer.poll(timeout=0.2) is None
        values = {r.value for r in got}
        assert len(values) == 201 and b"hello" in values and b"f99" in values
        hello = next(r for r in got if r.value == b"hello")
        assert hello.key == b"k" and hello.headers == [("h", b"v")]

    run(main())


def test_poll_batch_seek_position_pause(url, topic):
    async def main():
        producer = sluice.aio.Producer(url)
        for i in range(5):
            await producer.produce(topic, str(i))
        await producer.close()
        consumer = sluice.aio.Consumer(url, [topic], auto_offset_reset="earliest")
        await consumer.start()
        assert await consumer.assignment() == [(topic, 0)]
        got = []
        while len(got) < 5:
            got += await consumer.poll_batch(max_records=2, timeout=10)
        assert [r.offset for r in got] == [0, 1, 2, 3, 4]
        assert await consumer.position(topic, 0) == 5
        await consumer.seek(topic, 0, 1)
        assert (await consumer.poll(timeout=10)).offset == 1
        await consumer.pause([(topic, 0)])
        assert await consumer.paused() == [(topic, 0)]
        await consumer.resume([(topic, 0)])
        await consumer.close()
        await consumer.close()
        with pytest.raises(sluice.ClosedError):
            await consumer.poll(0)
        assert [r async for r in consumer] == []

    run(main())


def test_groups_commit_and_admin(url, topic):
    group = f"g-{topic}"

    async def main():
        async with sluice.aio.Admin(url) as admin:
            name = unique("aio")
            created = await admin.create_topic(name, partitions=2)
            assert len(created["partitions"]) == 2
            assert any(t["name"] == name for t in await admin.list_topics())
            await admin.delete_topic(name)
            async with sluice.aio.Producer(url) as producer:
                await asyncio.gather(*(producer.send(topic, str(i)) for i in range(4)))
            async with sluice.aio.Consumer(url, topic, group=group, auto_offset_reset="earliest",
                                           enable_auto_commit=False) as consumer:
                assert consumer.group == group
                assert (await consumer.poll(10)).offset == 0
                assert (await consumer.poll(10)).offset == 1
                await consumer.commit()
            offsets = await admin.group_offsets(group)
            assert [(o["partition"], o["offset"]) for o in offsets] == [(0, 2)]
            description = await admin.describe_group(group)
            assert description["group"] == group

    run(main())


def test_errors_are_raised_by_the_awaitables(url, admin):
    missing = unique("missing")

    async def main():
        async with sluice.aio.Admin(url) as a:
            with pytest.raises(sluice.errors.UnknownTopicError) as e:
                await a.describe_topic(missing)
            assert e.value.code == "unknown_topic"
        producer = sluice.aio.Producer(url)
        with pytest.raises(sluice.errors.UnknownTopicError):
            await producer.send(missing, b"x")
        await producer.close()
        with pytest.raises(sluice.ClosedError):
            await producer.send(missing, b"x")
        consumer = sluice.aio.Consumer(url, missing)
        with pytest.raises(sluice.errors.UnknownTopicError):
            async for _ in consumer:
                pass
        with pytest.raises(sluice.ConnectionError):
            await sluice.aio.Admin("http://127.0.0.1:1").list_topics()

    run(main())


def test_cancelling_a_waiting_read_leaves_the_consumer_usable(url, topic):
    async def main():
        async with sluice.aio.Consumer(url, topic) as consumer:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(consumer.__anext__(), timeout=0.2)
            async with sluice.aio.Producer(url) as producer:
                await producer.send(topic, b"after")
            record = await consumer.poll(timeout=10)
            assert record is not None and record.value == b"after"

    run(main())


def test_close_ends_a_waiting_async_for(url, topic):
    async def main():
        consumer = sluice.aio.Consumer(url, topic)
        await consumer.start()
        seen = []

        async def read():
            async for record in consumer:
                seen.append(record)

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(0)  # let the reader start waiting
        await consumer.close()
        await asyncio.wait_for(reader, timeout=10)
        assert seen == []

    run(main())


def test_produce_waits_for_room_when_the_buffer_is_full(url, topic):
    async def main():
        # 4 KiB of buffer: most records wait for earlier ones to be acknowledged.
        async with sluice.aio.Producer(url, buffer_bytes=4096, linger_ms=0) as producer:
            for i in range(200):
                await producer.produce(topic, bytes(1000) + str(i).encode())
            await producer.flush()
        async with sluice.aio.Admin(url) as admin:
            offsets = await admin.list_offsets(topic)
        assert offsets[0]["latest"] == 200

    run(main())
