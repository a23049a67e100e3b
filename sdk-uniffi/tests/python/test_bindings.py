"""The UniFFI-generated Python bindings of sluice-ffi (ctypes, no PyO3) against a real broker.

Run by sdk-uniffi/ci.sh, which generates `sluice_ffi.py` next to `libsluice_ffi.so` in a
directory put on PYTHONPATH. Environment:

    SLUICE_BIN          the broker binary
    SLUICE_PLUGINS_DIR  a directory holding the built example plugins (json_filter.wasm)
"""

import asyncio
import gc
import json
import os
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
from pathlib import Path

import sluice_ffi as sf


class Broker:
    """`sluice serve` on port 0 in a fresh data dir; ready once it prints its address."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="sluice-uniffi-")
        self.proc = subprocess.Popen(
            [os.environ["SLUICE_BIN"], "serve", "--listen", "127.0.0.1:0",
             "--data-dir", str(Path(self.dir.name) / "data")],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "SLUICE_LOG": "warn"},
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("sluice listening on http://"):
                self.addr = line.split("http://", 1)[1].split()[0]
                break
        else:
            raise RuntimeError(f"sluice exited before it was ready ({self.proc.wait()})")
        # Keep draining stdout so the broker never blocks on a full pipe.
        self.drain = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self.drain.start()
        self.url = f"http://{self.addr}"

    def websocket_connections(self) -> int:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("sluice_websocket_connections"):
                    return int(float(line.split()[-1]))
        raise AssertionError("no sluice_websocket_connections in /metrics")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.drain.join()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.dir.cleanup()


def record(topic: str, i: int) -> sf.ProducerRecord:
    return sf.ProducerRecord(
        topic=topic,
        value=json.dumps({"n": i}).encode(),
        key=f"k{i}".encode(),
        headers=[sf.Header(key="i", value=str(i).encode())],
    )


async def poll_n(consumer: sf.SluiceConsumer, n: int) -> list:
    """Polls until `n` records came; fails after 20 s without them."""
    deadline = time.monotonic() + 20
    out: list = []
    while len(out) < n:
        assert time.monotonic() < deadline, f"only {len(out)} of {n} records came within 20 s"
        out.extend(await consumer.poll_batch(500, 500))
    return out


class BindingsTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self) -> None:
        self.broker = Broker()

    def tearDown(self) -> None:
        self.broker.stop()

    async def connect(self) -> sf.SluiceClient:
        return await sf.SluiceClient.connect_with(
            self.broker.url,
            sf.ClientOptions(request_timeout_ms=10_000, connect_timeout_ms=5_000,
                             client_name="uniffi-python-test"),
        )

    async def test_produce_1000_consume_as_group_member_commit(self) -> None:
        client = await self.connect()
        admin = client.admin()
        created = await admin.create_topic("orders", 3, {})
        self.assertEqual(len(created.partitions), 3)
        self.assertIn("orders", [t.name for t in await admin.list_topics()])

        producer = client.producer(sf.ProducerOptions())
        sent = []
        for start in range(0, 1000, 250):  # four calls across the boundary, not 1000
            sent.extend(await producer.send_batch([record("orders", i) for i in range(start, start + 250)]))
        self.assertEqual(len(sent), 1000)
        offsets: dict = {}
        for m in sent:
            self.assertEqual(m.topic, "orders")
            self.assertLess(m.partition, 3)
            offsets.setdefault(m.partition, []).append(m.offset)
        for p, got in offsets.items():
            self.assertEqual(got, list(range(len(got))), f"partition {p}")
        await producer.flush()
        await producer.close()

        consumer = await client.consumer(sf.ConsumerOptions(
            topics=["orders"], group="billing", start=sf.StartPosition.EARLIEST(), auto_commit=False))
        records = await poll_n(consumer, 1000)
        self.assertEqual(len(records), 1000)
        seen = sorted(json.loads(r.value)["n"] for r in records)
        self.assertEqual(seen, list(range(1000)))
        for r in records:
            n = json.loads(r.value)["n"]
            self.assertEqual(r.key, f"k{n}".encode())
            self.assertEqual(r.headers, [sf.Header(key="i", value=str(n).encode())])
        await consumer.commit()

        self.assertIn("billing", [g.group for g in await admin.list_groups()])
        described = await admin.describe_group("billing")
        self.assertEqual(len(described.members), 1)
        self.assertEqual(sum(p.committed or 0 for p in described.partitions), 1000)
        self.assertTrue(all(p.lag == 0 for p in described.partitions))

        await consumer.seek("orders", 0, 0)
        self.assertEqual(await consumer.position("orders", 0), 0)
        again = await poll_n(consumer, len(offsets[0]))
        self.assertEqual({r.partition for r in again}, {0})
        await consumer.close()
        await admin.delete_topic("orders")
        self.assertNotIn("orders", [t.name for t in await admin.list_topics()])
        client.close()

    async def test_filter_plugin_with_params(self) -> None:
        client = await self.connect()
        admin = client.admin()
        await admin.create_topic("events", 2, {})
        wasm = Path(os.environ["SLUICE_PLUGINS_DIR"]) / "json_filter.wasm"
        plugin = await admin.upload_plugin("big", wasm.read_bytes())
        self.assertEqual(plugin.kind, "filter")
        self.assertIn("big", [p.name for p in await admin.list_plugins()])

        producer = client.producer(sf.ProducerOptions(linger_ms=1))
        # The columnar call: values only, a summary per partition back.
        summary = await producer.send_values(
            "events", [json.dumps({"n": i}).encode() for i in range(300)], None)
        self.assertEqual(summary.topic, "events")
        self.assertEqual(sum(p.records for p in summary.partitions), 300)
        for p in summary.partitions:
            self.assertEqual(p.first_offset, 0)
            self.assertEqual(p.last_offset, p.records - 1)
        with self.assertRaises(sf.SluiceError.InvalidInput):
            await producer.send_values("events", [b"a", b"b"], [b"k"])
        await producer.close()

        consumer = await client.consumer(sf.ConsumerOptions(
            topics=["events"], start=sf.StartPosition.EARLIEST(),
            filter=sf.FilterOptions(plugin="big", params={"field": "n", "op": ">=", "value": "250"})))
        got = sorted(json.loads(r.value)["n"] for r in await poll_n(consumer, 50))
        self.assertEqual(got, list(range(250, 300)))
        self.assertEqual(await consumer.poll_batch(100, 300), [])
        await consumer.close()
        await admin.delete_plugin("big")
        self.assertEqual(await admin.list_plugins(), [])

    async def test_errors(self) -> None:
        client = await self.connect()
        admin = client.admin()
        await admin.create_topic("t", 1, {})
        with self.assertRaises(sf.SluiceError.Broker) as caught:
            await admin.create_topic("t", 1, {})
        self.assertEqual(caught.exception.code, "topic_exists")
        self.assertIsInstance(caught.exception, sf.SluiceError)
        with self.assertRaises(sf.SluiceError.Broker) as caught:
            await client.producer(sf.ProducerOptions()).send_batch([record("nope", 0)])
        self.assertEqual(caught.exception.code, "unknown_topic")
        with self.assertRaises(sf.SluiceError.Broker) as caught:
            await admin.upload_plugin("junk", b"not wasm")
        self.assertEqual(caught.exception.code, "invalid_plugin")
        consumer = await client.consumer(sf.ConsumerOptions(topics=["t"]))
        with self.assertRaises(sf.SluiceError.InvalidInput):
            await consumer.poll_batch(0, 10)
        await consumer.close()
        with self.assertRaises(sf.SluiceError.Closed):
            await consumer.poll_batch(10, 10)
        with self.assertRaises(sf.SluiceError.Connection):
            await sf.SluiceClient.connect("http://127.0.0.1:1")

    async def test_dropped_objects_close_the_connection(self) -> None:
        client = await self.connect()
        await client.admin().create_topic("t", 1, {})
        producer = client.producer(sf.ProducerOptions())
        consumer = await client.consumer(sf.ConsumerOptions(topics=["t"], group="g"))
        self.assertEqual(self.broker.websocket_connections(), 1)
        del client
        await producer.send(record("t", 0))  # the producer still holds the connection
        del producer, consumer
        gc.collect()
        deadline = time.monotonic() + 10
        while self.broker.websocket_connections() != 0:
            self.assertLess(time.monotonic(), deadline, "the connection outlived its objects")
            await asyncio.sleep(0.02)


if __name__ == "__main__":
    unittest.main(verbosity=2)
