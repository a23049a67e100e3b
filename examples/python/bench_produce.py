"""Produce throughput from Python: N records of a given size into a fresh topic.

    python examples/python/bench_produce.py URL [--count N] [--record-bytes B]
        [--partitions P] [--mode batch|produce|send] [--acks 1]

Modes: `batch` hands records over with `produce_batch` (one call per 10 000 records),
`produce` calls `produce` per record (fire and forget), `send` calls `send` per record and
keeps each `SendFuture`, resolving them all at the end; `async` awaits
`sluice.aio.Producer.produce` per record in an asyncio loop. The time runs from the first record
handed over to the broker's acknowledgement of the last (`flush`). Batching happens in Rust
either way; the modes differ in what Python does per record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import List

import sluice
import sluice.aio


def produce_blocking(args: argparse.Namespace, topic: str, values: List[bytes]) -> float:
    with sluice.Producer(args.url, acks=args.acks, linger_ms=args.linger_ms) as producer:
        start = time.perf_counter()
        if args.mode == "batch":
            left = args.count
            while left > 0:
                n = min(left, len(values))
                producer.produce_batch(topic, values[:n])
                left -= n
        elif args.mode == "produce":
            produce = producer.produce
            for i in range(args.count):
                produce(topic, values[i % len(values)])
        else:
            send = producer.send
            futures = [send(topic, values[i % len(values)]) for i in range(args.count)]
        producer.flush()
        if args.mode == "send":
            last = futures[-1].result()
            assert last.offset is not None or args.acks == "0"
        elapsed = time.perf_counter() - start
    return elapsed


async def produce_async(args: argparse.Namespace, topic: str, values: List[bytes]) -> float:
    async with sluice.aio.Producer(args.url, acks=args.acks, linger_ms=args.linger_ms) as producer:
        start = time.perf_counter()
        produce = producer.produce
        for i in range(args.count):
            await produce(topic, values[i % len(values)])
        await producer.flush()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--record-bytes", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--mode", choices=["batch", "produce", "send", "async"], default="batch")
    parser.add_argument("--acks", default="1")
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    topic = f"bench-py-{uuid.uuid4().hex[:8]}"
    with sluice.Admin(args.url) as admin:
        admin.create_topic(topic, partitions=args.partitions)
    # Distinct values, made before the clock starts.
    base = os.urandom(args.record_bytes)
    values = [base[:-8] + i.to_bytes(8, "little") for i in range(min(args.count, 10_000))]

    if args.mode == "async":
        elapsed = asyncio.run(produce_async(args, topic, values))
    else:
        elapsed = produce_blocking(args, topic, values)

    with sluice.Admin(args.url) as admin:
        written = sum(p["latest"] for p in admin.list_offsets(topic))
        admin.delete_topic(topic)
    assert written == args.count, f"the broker holds {written} of {args.count} records"

    rate = args.count / elapsed
    result = {
        "mode": args.mode,
        "records": args.count,
        "record_bytes": args.record_bytes,
        "partitions": args.partitions,
        "acks": args.acks,
        "seconds": round(elapsed, 3),
        "records_per_s": round(rate),
        "mb_per_s": round(rate * args.record_bytes / 1e6, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.mode}: {args.count} records of {args.record_bytes} B in {elapsed:.2f} s: "
            f"{rate / 1000:.0f} k records/s, {result['mb_per_s']} MB/s"
        )


if __name__ == "__main__":
    main()
