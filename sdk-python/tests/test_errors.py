"""Errors: broker codes as exception classes, a broker that is down, bad input, Ctrl-C."""

from __future__ import annotations

import builtins
import signal
import subprocess
import sys
import time

import pytest

import sluice
from conftest import unique


def test_unknown_topic_everywhere_carries_the_broker_code(url, admin):
    missing = unique("missing")
    with pytest.raises(sluice.errors.UnknownTopicError) as e:
        admin.describe_topic(missing)
    assert e.value.code == "unknown_topic" and not e.value.retriable
    assert isinstance(e.value, sluice.BrokerError) and isinstance(e.value, sluice.SluiceError)
    assert missing in str(e.value)
    with sluice.Producer(url) as producer:
        with pytest.raises(sluice.errors.UnknownTopicError):
            producer.send(missing, b"x")
        with pytest.raises(sluice.errors.UnknownTopicError):
            producer.produce(missing, b"x")
    with pytest.raises(sluice.errors.UnknownTopicError):
        sluice.Consumer(url, missing)
    with pytest.raises(sluice.errors.UnknownTopicError):
        admin.delete_topic(missing)


def test_other_broker_codes(admin, topic):
    with pytest.raises(sluice.errors.TopicExistsError) as e:
        admin.create_topic(topic)
    assert e.value.code == "topic_exists"
    with pytest.raises(sluice.errors.InvalidTopicNameError):
        admin.create_topic("bad name!")
    with pytest.raises(sluice.errors.InvalidConfigError):
        admin.create_topic(unique("t"), config={"no.such.setting": 1})
    with pytest.raises(sluice.errors.UnknownGroupError) as e:
        admin.describe_group(unique("nogroup"))
    assert e.value.code == "unknown_group"


def test_bad_input_is_refused_before_anything_is_sent(url, admin, topic):
    name = unique("small")
    admin.create_topic(name, config={"max.message.bytes": 2048})
    with sluice.Producer(url) as producer:
        with pytest.raises(sluice.InvalidInputError) as e:
            producer.send(topic, b"x", partition=5)
        assert isinstance(e.value, ValueError) and e.value.code is None
        with pytest.raises(sluice.InvalidInputError):
            producer.send(name, b"x" * 4096)
        with pytest.raises(sluice.InvalidInputError):
            producer.send("", b"x")
        with pytest.raises(TypeError):
            producer.send(topic, 42)
        with pytest.raises(TypeError):
            producer.send(topic, b"x", headers={1: b"x"})
        with pytest.raises(sluice.InvalidInputError):
            producer.flush(timeout=-1)
    for bad in (
        dict(auto_offset_reset="sometime"),
        dict(auto_offset_reset="none"),
        dict(group="g", assignor="fair"),
        dict(group="g", partitions=[0]),
        dict(group=""),
    ):
        with pytest.raises(sluice.InvalidInputError):
            sluice.Consumer(url, topic, **bad)
    with pytest.raises(sluice.InvalidInputError):
        sluice.Consumer(url, [])
    with pytest.raises(sluice.InvalidInputError):
        sluice.Admin("   ")
    with pytest.raises(sluice.InvalidInputError):
        sluice.Admin("ftp://example")
    with pytest.raises(sluice.InvalidInputError):
        admin.reset_offsets("g")


def test_a_broker_that_is_not_there(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    for make in (lambda: sluice.Producer(url), lambda: sluice.Consumer(url, "t"), lambda: sluice.Admin(url)):
        with pytest.raises(sluice.ConnectionError) as e:
            make()
        assert isinstance(e.value, builtins.ConnectionError)
        assert e.value.retriable and e.value.code is None


def test_a_broker_that_goes_down(own_broker):
    url = own_broker.url
    admin = sluice.Admin(url, request_timeout_ms=1500)
    name = unique("t")
    admin.create_topic(name)
    producer = sluice.Producer(url, request_timeout_ms=1500, delivery_timeout_ms=1500, linger_ms=0)
    assert producer.send(name, b"before").result(timeout=10).offset == 0
    own_broker.stop()
    started = time.monotonic()
    with pytest.raises((sluice.ConnectionError, sluice.TimeoutError)) as e:
        admin.list_topics()
    assert e.value.retriable
    future = producer.send(name, b"after")
    with pytest.raises((sluice.ConnectionError, sluice.TimeoutError)):
        future.result(timeout=30)
    assert isinstance(future.exception(), sluice.SluiceError)
    producer.produce(name, b"lost")
    with pytest.raises((sluice.ConnectionError, sluice.TimeoutError)) as e:
        producer.flush(timeout=30)
    assert "fire-and-forget" in str(e.value)
    assert time.monotonic() - started < 30
    producer.close(timeout=5)
    admin.close()


def test_send_future_result_times_out(url, topic):
    with sluice.Producer(url, linger_ms=60_000, batch_bytes=1 << 20) as producer:
        future = producer.send(topic, b"x")
        with pytest.raises(sluice.TimeoutError) as e:
            future.result(timeout=0.05)
        assert isinstance(e.value, builtins.TimeoutError)
        assert not future.done()
        producer.flush(timeout=10)
        assert future.done() and future.result().offset == 0


def test_errors_survive_pickling():
    import pickle

    e = sluice.errors.error_class_for_code("unknown_topic")("no such topic", "unknown_topic", False)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is sluice.errors.UnknownTopicError and back.code == "unknown_topic"
    assert sluice.errors.error_class_for_code("from_the_future") is sluice.BrokerError


CTRL_C = r"""
import sys, sluice
consumer = sluice.Consumer(sys.argv[1], sys.argv[2])
for how in ("poll", "iterate"):
    try:
        print("blocking", flush=True)
        if how == "poll":
            consumer.poll()          # no timeout: only Ctrl-C ends it
        else:
            for record in consumer:  # nothing comes either
                pass
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


def test_ctrl_c_interrupts_a_blocking_poll(url, topic):
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C, url, topic], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        for _ in range(2):
            assert child.stdout.readline().strip() == "blocking"
            child.send_signal(signal.SIGINT)
            assert child.stdout.readline().strip() == "interrupted"
        assert child.wait(timeout=15) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
