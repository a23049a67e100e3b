"""Consumer groups across processes, and broadcast consumers."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

import sluice

# A group member in its own interpreter: prints its assignment whenever it changes and every
# record it reads as JSON lines; closes (commits, leaves) when its stdin closes.
MEMBER = r"""
import json, sys, threading, sluice
url, topic, group = sys.argv[1:4]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
def say(**msg):
    print(json.dumps(msg), flush=True)
with sluice.Consumer(url, topic, group=group, auto_offset_reset="earliest",
                     session_timeout_ms=10000) as consumer:
    last = None
    while not stop.is_set():
        record = consumer.poll(timeout=0.1)
        assignment = sorted(p for _, p in consumer.assignment())
        if assignment != last:
            last = assignment
            say(assignment=assignment)
        if record is not None:
            say(partition=record.partition, offset=record.offset, value=record.value.decode())
say(closed=True)
"""


class Member:
    def __init__(self, url: str, topic: str, group: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", MEMBER, url, topic, group],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: "queue.Queue[dict]" = queue.Queue()
        self.assignment: list = []
        self.records: list = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def take(self) -> None:
        """Applies every line printed so far."""
        while True:
            try:
                msg = self.lines.get_nowait()
            except queue.Empty:
                return
            if "assignment" in msg:
                self.assignment = msg["assignment"]
            elif "partition" in msg:
                self.records.append(msg)

    def stop(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=30)


def until(condition, members, what: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while True:
        for m in members:
            m.take()
        if condition():
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_processes_in_a_group_split_the_partitions(url, topic4):
    group = f"g-{topic4}"
    a = Member(url, topic4, group)
    b = Member(url, topic4, group)
    members = [a, b]
    try:
        until(
            lambda: len(a.assignment) == 2
            and len(b.assignment) == 2
            and sorted(a.assignment + b.assignment) == [0, 1, 2, 3],
            members,
            "a 2/2 split of the 4 partitions",
        )
        with sluice.Producer(url) as producer:
            for i in range(400):
                producer.produce(topic4, f"r{i}", partition=i % 4)
        until(lambda: len(a.records) + len(b.records) >= 400, members, "400 records")
        for m in members:
            assert m.records, "each member reads its share"
            assert {r["partition"] for r in m.records} <= set(m.assignment)
        values = [r["value"] for r in a.records + b.records]
        assert sorted(values) == sorted(f"r{i}" for i in range(400)), "each record read once"
    finally:
        codes = [m.stop() for m in members]
    assert codes == [0, 0]
    # Both committed and left at close: the group has everything committed, no members.
    with sluice.Admin(url) as admin:
        described = admin.describe_group(group)
        assert described["members"] == []
        assert sum(p["lag"] for p in described["partitions"]) == 0
        committed = {o["partition"]: o["offset"] for o in admin.group_offsets(group)}
        assert committed == {0: 100, 1: 100, 2: 100, 3: 100}


def test_a_group_resumes_from_its_committed_offsets(url, topic):
    group = f"g-{topic}"
    with sluice.Producer(url) as producer:
        for i in range(6):
            producer.produce(topic, str(i))
    with sluice.Consumer(url, topic, group=group, auto_offset_reset="earliest",
                         enable_auto_commit=False) as consumer:
        assert consumer.group == group
        got = [consumer.poll(10).offset for _ in range(3)]
        assert got == [0, 1, 2]
        consumer.commit()
    # Auto-commit would commit the position (4) at close, over the explicit commit.
    with sluice.Consumer(url, topic, group=group, auto_offset_reset="earliest",
                         enable_auto_commit=False) as consumer:
        assert consumer.poll(10).offset == 3
        consumer.commit([(topic, 0, 5)])
    with sluice.Consumer(url, topic, group=group) as consumer:
        assert consumer.poll(10).offset == 5
    with sluice.Admin(url) as admin:
        assert any(g["group"] == group for g in admin.list_groups())
        reset = admin.reset_offsets(group, "earliest")
        assert [(o["partition"], o["offset"]) for o in reset] == [(0, 0)]
        admin.reset_offsets(group, 4, topics=[topic])
        assert admin.group_offsets(group)[0]["offset"] == 4
        admin.delete_group(group)
        assert all(g["group"] != group for g in admin.list_groups())


def test_broadcast_consumers_each_read_every_partition(url, topic4):
    consumers = [sluice.Consumer(url, topic4, auto_offset_reset="earliest") for _ in range(2)]
    try:
        with sluice.Producer(url) as producer:
            for i in range(40):
                producer.produce(topic4, f"b{i}", partition=i % 4)
        for consumer in consumers:
            assert consumer.group is None
            assert sorted(consumer.assignment()) == [(topic4, p) for p in range(4)]
            values = sorted(consumer.poll(10).value for _ in range(40))
            assert values == sorted(f"b{i}".encode() for i in range(40))
            with __import__("pytest").raises(sluice.InvalidInputError):
                consumer.commit()
    finally:
        for consumer in consumers:
            consumer.close()
