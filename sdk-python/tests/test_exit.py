"""The interpreter exits promptly and cleanly with clients still open."""

from __future__ import annotations

import sluice
from conftest import run_python, unique

OPEN_CLIENTS = r"""
import asyncio, sys, threading, sluice, sluice.aio
url, topic, group = sys.argv[1:4]
admin = sluice.Admin(url)
producer = sluice.Producer(url, linger_ms=60_000)    # nothing sent until close
for i in range(100):
    producer.produce(topic, f"left-open-{i}")
consumer = sluice.Consumer(url, topic, group=group, auto_offset_reset="earliest")
consumer.poll(timeout=0.1)
blocked = sluice.Consumer(url, topic)                # a daemon thread waits on it forever
threading.Thread(target=blocked.poll, daemon=True).start()
aproducer = sluice.aio.Producer(url)
async def open_async():
    await aproducer.start()
    c = sluice.aio.Consumer(url, topic)
    await c.start()
    return c
aconsumer = asyncio.run(open_async())
print("open", flush=True)
"""


def test_exit_with_open_clients_is_prompt_and_sends_buffered_records(url, admin, topic):
    group = unique("exit")
    result = run_python(OPEN_CLIENTS, url, topic, group, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "open"
    # The producer left open was closed at exit: its buffered records were sent.
    assert admin.list_offsets(topic)[0]["latest"] == 100
    # The group consumer left its group at exit.
    assert admin.describe_group(group)["members"] == []


def test_exit_while_the_broker_is_gone(own_broker):
    code = r"""
import sys, sluice
producer = sluice.Producer(sys.argv[1], request_timeout_ms=1000)
consumer = sluice.Consumer(sys.argv[1], sys.argv[2])
print("open", flush=True)
sys.stdin.read()
"""
    import subprocess
    import sys
    import time

    with sluice.Admin(own_broker.url) as a:
        name = unique("t")
        a.create_topic(name)
    child = subprocess.Popen(
        [sys.executable, "-c", code, own_broker.url, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "open"
    own_broker.stop()
    started = time.monotonic()
    child.stdin.close()
    assert child.wait(timeout=30) == 0
    assert time.monotonic() - started < 15
