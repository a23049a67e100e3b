"""Produce throughput through the UniFFI bindings (the generated Python, ctypes): N records of
a given size into a fresh topic, handed over with `send_batch` (`--mode batch`, a list of
`ProducerRecord`s per call) or `send_values` (`--mode values`, a list of byte strings per call).

    PYTHONPATH=<dir with sluice_ffi.py and libsluice_ffi.so> \
        python3 sdk-uniffi/bench_produce.py URL [--count N] [--record-bytes B] [--batch R]

Like examples/python/bench_produce.py (the PyO3 package): a fresh topic of one partition,
acks=1, linger 5 ms; the time runs from the first record handed over to the acknowledgement
of the last. `send_batch` waits for its batch's acknowledgements, so `--window` batches are
kept in flight at once (asyncio tasks) to keep the producer's buffer full.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

import sluice_ffi as sf


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--record-bytes", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--mode", choices=["batch", "values"], default="batch")
    args = parser.parse_args()

    client = await sf.SluiceClient.connect(args.url)
    topic = f"bench-uniffi-{uuid.uuid4().hex[:8]}"
    await client.admin().create_topic(topic, 1, {})
    producer = client.producer(sf.ProducerOptions(acks=sf.AckLevel.LEADER, linger_ms=5))
    value = os.urandom(args.record_bytes)
    if args.mode == "batch":
        batch = [sf.ProducerRecord(topic=topic, value=value) for _ in range(args.batch)]

        def call(n: int):
            return producer.send_batch(batch[:n] if n < args.batch else batch)

        def count(result) -> int:
            return len(result)
    else:
        values = [value] * args.batch

        def call(n: int):
            return producer.send_values(topic, values[:n] if n < args.batch else values, None)

        def count(result) -> int:
            return sum(p.records for p in result.partitions)

    start = time.perf_counter()
    in_flight: set = set()
    sent = 0
    acked = 0
    while sent < args.count:
        n = min(args.batch, args.count - sent)
        in_flight.add(asyncio.ensure_future(call(n)))
        sent += n
        if len(in_flight) >= args.window:
            done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            acked += sum(count(d.result()) for d in done)
    for d in in_flight:
        acked += count(await d)
    await producer.flush()
    elapsed = time.perf_counter() - start
    assert acked == args.count, (acked, args.count)
    await producer.close()
    client.close()
    print(json.dumps({
        "mode": f"uniffi {args.mode}",
        "records": args.count,
        "record_bytes": args.record_bytes,
        "seconds": round(elapsed, 3),
        "records_per_s": round(args.count / elapsed),
        "mb_per_s": round(args.count * args.record_bytes / elapsed / 1e6, 1),
    }))


asyncio.run(main())
