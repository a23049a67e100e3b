"""A filter plugin (the example keyword filter, built from plugins/) through the client."""

from __future__ import annotations

import pytest

import sluice
from conftest import unique


def test_a_filter_plugin_runs_in_the_broker(url, admin, topic, plugins_dir):
    name = unique("grep")
    described = admin.upload_plugin(name, plugins_dir / "keyword_filter.wasm")
    assert described["name"] == name and described["kind"] == "filter"
    assert len(described["sha256"]) == 64
    assert any(p["name"] == name for p in admin.list_plugins())

    with sluice.Producer(url) as producer:
        for i in range(20):
            level = "ERROR" if i % 4 == 0 else "INFO"
            producer.produce(topic, f"{level} line {i}")
    with sluice.Consumer(url, topic, auto_offset_reset="earliest", filter=name,
                         filter_params={"keyword": "ERROR"}) as consumer:
        got = [consumer.poll(10) for _ in range(5)]
        assert [r.value.decode() for r in got] == [f"ERROR line {i}" for i in range(0, 20, 4)]
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
    name = unique("grep")
    admin.upload_plugin(name, plugins_dir / "keyword_filter.wasm")
    with pytest.raises(sluice.BrokerError) as e:
        sluice.Consumer(url, topic, filter=name, filter_params={"bogus": "1"})
    assert e.value.code in ("invalid_plugin", "plugin_failed")
    with pytest.raises(sluice.InvalidInputError):
        sluice.Consumer(url, topic, filter_params={"keyword": "x"})
