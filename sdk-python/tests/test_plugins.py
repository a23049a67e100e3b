"""Plugins through the client: the example filter and partitioner plugins built from the
repository's plugins/ workspace (the small JSON ones: a debug broker compiles a module with
Cranelift unoptimised, which for the 850 KB keyword filter takes minutes on a loaded machine).
"""

from __future__ import annotations

import json
from typing import Iterator

import pytest

import sluice
from conftest import unique


@pytest.fixture(scope="module")
def admin(url: str) -> Iterator[sluice.Admin]:
    """An admin client that waits for the broker to validate and compile an upload."""
    with sluice.Admin(url, request_timeout_ms=300_000) as a:
        yield a


def test_a_filter_plugin_runs_in_the_broker(url, admin, topic, plugins_dir):
    name = unique("errors-only")
    described = admin.upload_plugin(name, plugins_dir / "json_filter.wasm")
    assert described["name"] == name and described["kind"] == "filter"
    assert len(described["sha256"]) == 64
    assert any(p["name"] == name for p in admin.list_plugins())

    with sluice.Producer(url) as producer:
        for i in range(20):
            level = "error" if i % 4 == 0 else "info"
            producer.produce(topic, json.dumps({"level": level, "line": i}))
    with sluice.Consumer(url, topic, auto_offset_reset="earliest", filter=name,
                         filter_params={"field": "level", "op": "==", "value": "error"}) as consumer:
        got = [consumer.poll(30) for _ in range(5)]
        assert [json.loads(r.value)["line"] for r in got] == [0, 4, 8, 12, 16]
        assert [r.offset for r in got] == [0, 4, 8, 12, 16]
        assert consumer.poll(0.3) is None
        assert consumer.position(topic, 0) == 20  # positions pass the dropped records

    assert admin.describe_plugin(name)["records"] >= 20
    admin.delete_plugin(name)
    with pytest.raises(sluice.errors.UnknownPluginError) as e:
        admin.describe_plugin(name)
    assert e.value.code == "unknown_plugin"


def test_plugins_upload_from_bytes_and_bad_modules_are_refused(admin, plugins_dir, tmp_path):
    name = unique("keep")
    module = (plugins_dir / "keep_all.wasm").read_bytes()
    assert admin.upload_plugin(name, module)["size_bytes"] == len(module)
    admin.delete_plugin(name)

    with pytest.raises(sluice.errors.InvalidPluginError) as e:
        admin.upload_plugin(unique("junk"), b"definitely not wasm")
    assert e.value.code == "invalid_plugin" and not e.value.retriable
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm junk")
    with pytest.raises(sluice.BrokerError) as e:
        admin.upload_plugin(unique("junk"), str(junk))
    assert e.value.code == "invalid_plugin"
    with pytest.raises(OSError):
        admin.upload_plugin(unique("missing"), tmp_path / "missing.wasm")


def test_a_filter_that_does_not_exist_or_refuses_its_params_fails_the_consumer(url, admin, topic, plugins_dir):
    with pytest.raises(sluice.errors.UnknownPluginError):
        sluice.Consumer(url, topic, filter=unique("nope"))
    name = unique("json")
    admin.upload_plugin(name, plugins_dir / "json_filter.wasm")
    with pytest.raises(sluice.BrokerError) as e:
        sluice.Consumer(url, topic, filter=name, filter_params={"bogus": "1"})
    assert e.value.code in ("invalid_plugin", "plugin_failed")
    with pytest.raises(sluice.InvalidInputError):
        sluice.Consumer(url, topic, filter_params={"keyword": "x"})


def test_a_partitioner_plugin_routes_in_the_broker(url, admin, plugins_dir):
    plugin = unique("region")
    admin.upload_plugin(plugin, plugins_dir / "json_partitioner.wasm")
    name = unique("routed")
    admin.create_topic(name, partitions=3, config={
        "partitioner": plugin, "partitioner.param.route.eu": 1, "partitioner.param.route.us": 2,
    })
    with sluice.Producer(url) as producer:
        eu = producer.send(name, b'{"region": "eu"}')
        us = producer.send(name, '{"region": "us"}')
        assert eu.result(timeout=10).partition == 1 and eu.partition == 1
        assert us.result(timeout=10).partition == 2
        pinned = producer.send(name, b'{"region": "eu"}', partition=0)  # explicit wins
        assert pinned.partition == 0 and pinned.result(timeout=10).partition == 0
