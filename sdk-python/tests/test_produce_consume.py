"""Producing and consuming with the blocking API against a real broker."""

from __future__ import annotations

import pytest

import sluice
from conftest import unique


def consume(url: str, topic: str, count: int, **kwargs) -> list:
    """Reads `count` records from the start of `topic` (each wait bounded)."""
    out: list = []
    with sluice.Consumer(url, topic, auto_offset_reset="earliest", **kwargs) as consumer:
        while len(out) < count:
            record = consumer.poll(timeout=10)
            assert record is not None, f"only {len(out)} of {count} records came"
            out.append(record)
    return out


def test_send_returns_metadata_and_the_record_round_trips(url, topic):
    with sluice.Producer(url) as producer:
        futures = [
            producer.send(topic, b"v0", key=b"k0", headers={"trace": b"abc", "n": None}),
            producer.send(topic, "v1 \u00e9", key="k1", headers=[("h", "1"), ("h", b"2")]),
            producer.send(topic, None, key="tombstone", timestamp=1_700_000_000_000),
            producer.send(topic, bytearray(b"v3")),
        ]
        metadata = [f.result(timeout=10) for f in futures]
    assert [m.offset for m in metadata] == [0, 1, 2, 3]
    assert {m.topic for m in metadata} == {topic}
    assert all(m.partition == 0 for m in metadata)
    assert metadata[2].timestamp == 1_700_000_000_000
    assert all(f.done() for f in futures)

    records = consume(url, topic, 4)
    assert [r.offset for r in records] == [0, 1, 2, 3]
    r0, r1, r2, r3 = records
    assert (r0.topic, r0.partition, r0.key, r0.value) == (topic, 0, b"k0", b"v0")
    assert r0.headers == [("trace", b"abc"), ("n", None)]
    assert r1.key == b"k1" and r1.value == "v1 \u00e9".encode()
    assert r1.headers == [("h", b"1"), ("h", b"2")]
    assert r2.value is None and r2.key == b"tombstone" and r2.timestamp == 1_700_000_000_000
    assert r3.value == b"v3" and r3.key is None and r3.headers == []
    assert r0.timestamp == metadata[0].timestamp
    assert "Record(topic=" in repr(r0)
    assert r0 == sluice.Record(topic, 0, 0, r0.timestamp, b"k0", b"v0", [("trace", b"abc"), ("n", None)])


def test_keys_route_like_kafka_and_explicit_partitions_win(url, topic4):
    with sluice.Producer(url) as producer:
        by_key = {}
        for i in range(40):
            key = f"user-{i % 5}"
            f = producer.send(topic4, b"x", key=key)
            by_key.setdefault(key, set()).add(f.partition)
        assert all(len(parts) == 1 for parts in by_key.values())
        # murmur2 as Kafka's default partitioner: "user-0" of 4 partitions.
        explicit = [producer.send(topic4, b"x", key="user-0", partition=p) for p in range(4)]
        assert [f.result(timeout=10).partition for f in explicit] == [0, 1, 2, 3]


def test_fire_and_forget_and_batches_are_all_delivered(url, topic4):
    with sluice.Producer(url, linger_ms=20) as producer:
        for i in range(1000):
            producer.produce(topic4, f"single-{i}")
        producer.produce_batch(topic4, [f"batch-{i}".encode() for i in range(2000)])
        producer.produce_batch(topic4, (f"kv-{i}" for i in range(100)), keys=(f"k{i}" for i in range(100)))
        producer.flush(timeout=30)
    records = consume(url, topic4, 3100)
    values = {r.value for r in records}
    assert len(values) == 3100
    assert b"single-999" in values and b"batch-1999" in values and b"kv-99" in values
    with pytest.raises(sluice.InvalidInputError):
        with sluice.Producer(url) as producer:
            producer.produce_batch(topic4, [b"a", b"b"], keys=[b"only-one"])


def test_acks_zero_gives_no_offsets(url, topic):
    with sluice.Producer(url, acks=0) as producer:
        m = producer.send(topic, b"x").result(timeout=10)
    assert m.offset is None and m.partition == 0
    for acks in (1, "1", "all", -1):
        with sluice.Producer(url, acks=acks) as producer:
            assert producer.send(topic, b"x").result(timeout=10).offset is not None
    with pytest.raises(sluice.InvalidInputError):
        sluice.Producer(url, acks=2)


def test_poll_times_out_with_none_and_poll_batch_takes_what_is_there(url, topic):
    with sluice.Consumer(url, topic, auto_offset_reset="earliest") as consumer:
        assert consumer.poll(timeout=0.2) is None
        assert consumer.poll_batch(timeout=0.2) == []
        with sluice.Producer(url) as producer:
            for i in range(10):
                producer.produce(topic, str(i))
        got = []
        while len(got) < 10:
            batch = consumer.poll_batch(max_records=4, timeout=10)
            assert batch, "records did not come"
            assert len(batch) <= 4
            got.extend(batch)
        assert [r.value for r in got] == [str(i).encode() for i in range(10)]
        with pytest.raises(sluice.InvalidInputError):
            consumer.poll_batch(max_records=0)


def test_latest_skips_what_was_there_and_iteration_yields_new_records(url, topic):
    with sluice.Producer(url) as producer:
        producer.send(topic, b"old").result(timeout=10)
        with sluice.Consumer(url, topic) as consumer:  # auto_offset_reset="latest"
            assert consumer.position(topic, 0) == 1
            producer.send(topic, b"new").result(timeout=10)
            record = next(iter(consumer))
            assert record.value == b"new" and record.offset == 1


def test_seek_position_and_assignment(url, topic):
    with sluice.Producer(url) as producer:
        for i in range(5):
            producer.produce(topic, str(i))
    with sluice.Consumer(url, topic, auto_offset_reset="earliest") as consumer:
        assert consumer.assignment() == [(topic, 0)]
        assert [consumer.poll(10).offset for _ in range(5)] == [0, 1, 2, 3, 4]
        assert consumer.position(topic, 0) == 5
        consumer.seek(topic, 0, 2)
        assert consumer.poll(10).offset == 2
        assert consumer.position(topic, 0) == 3
        assert consumer.position(topic, 7) is None
        with pytest.raises(sluice.InvalidInputError):
            consumer.seek(topic, 9, 0)


def test_partitions_option_reads_only_those(url, topic4):
    with sluice.Producer(url) as producer:
        for p in range(4):
            producer.send(topic4, f"p{p}", partition=p).result(timeout=10)
    with sluice.Consumer(url, [topic4], auto_offset_reset="earliest", partitions=[1, 3]) as consumer:
        assert sorted(consumer.assignment()) == [(topic4, 1), (topic4, 3)]
        got = sorted(consumer.poll(10).value for _ in range(2))
        assert got == [b"p1", b"p3"]
        assert consumer.poll(0.3) is None


def test_pause_and_resume(url, topic4):
    with sluice.Consumer(url, topic4, auto_offset_reset="earliest") as consumer:
        consumer.pause([(topic4, 0)])
        assert consumer.paused() == [(topic4, 0)]
        with sluice.Producer(url) as producer:
            producer.send(topic4, b"to-0", partition=0).result(timeout=10)
            producer.send(topic4, b"to-1", partition=1).result(timeout=10)
        assert consumer.poll(10).value == b"to-1"
        assert consumer.poll(0.3) is None
        consumer.resume([(topic4, 0)])
        assert consumer.paused() == []
        assert consumer.poll(10).value == b"to-0"


def test_context_managers_close_and_closed_clients_refuse_work(url, topic):
    with sluice.Producer(url) as producer:
        pass
    assert producer.closed
    with pytest.raises(sluice.ClosedError):
        producer.send(topic, b"x")
    producer.close()  # idempotent

    with sluice.Consumer(url, topic) as consumer:
        pass
    assert consumer.closed
    with pytest.raises(sluice.ClosedError):
        consumer.poll(0)
    assert list(consumer) == []

    with sluice.Admin(url) as admin:
        pass
    with pytest.raises(sluice.ClosedError):
        admin.list_topics()


def test_admin_topics_and_offsets(url, admin):
    name = unique("admin")
    created = admin.create_topic(name, partitions=3, config={"retention.ms": 86_400_000})
    assert created["name"] == name and len(created["partitions"]) == 3
    assert created["configs"]["retention.ms"] == "86400000"
    assert any(t["name"] == name and t["partitions"] == 3 for t in admin.list_topics())
    altered = admin.alter_topic(name, config={"retention.ms": None}, partitions=4)
    assert len(altered["partitions"]) == 4
    assert altered["configs"]["retention.ms"] != "86400000"
    with sluice.Producer(url) as producer:
        producer.send(name, b"x", partition=2).result(timeout=10)
    offsets = admin.list_offsets(name)
    assert [(o["partition"], o["earliest"], o["latest"]) for o in offsets] == [
        (0, 0, 0), (1, 0, 0), (2, 0, 1), (3, 0, 0)
    ]
    assert admin.describe_topic(name)["partitions"][2]["log_end_offset"] == 1
    admin.delete_topic(name)
    assert all(t["name"] != name for t in admin.list_topics())


def test_close_from_another_thread_ends_a_blocked_iteration(url, topic):
    import threading

    consumer = sluice.Consumer(url, topic)
    seen = []
    done = threading.Event()

    def read():
        for record in consumer:  # nothing comes: only close ends it
            seen.append(record)
        done.set()

    thread = threading.Thread(target=read)
    thread.start()
    consumer.close()
    assert done.wait(timeout=10), "close did not end the blocked iteration"
    thread.join(timeout=10)
    assert seen == [] and consumer.closed
