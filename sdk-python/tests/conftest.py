"""Fixtures: a real `sluice serve` broker on port 0 in a temporary directory, admin clients,
fresh topics, and the example plugins built from the repository's `plugins/` workspace.

Environment:
    SLUICE_BIN: the broker binary (default: $CARGO_TARGET_DIR/debug/sluice).
    SLUICE_PLUGINS_DIR: a directory holding the built example plugins (json_filter.wasm, ...)
        (default: $CARGO_TARGET_DIR/plugins/wasm32-unknown-unknown/release, where ci.sh builds
        them).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
import uuid
from typing import Iterator, List, Optional

import pytest

import sluice

REPO = pathlib.Path(__file__).resolve().parents[2]


def target_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def sluice_bin() -> str:
    path = os.environ.get("SLUICE_BIN") or str(target_dir() / "debug" / "sluice")
    if not os.access(path, os.X_OK):
        pytest.exit(
            f"no broker binary at {path}: build it (cargo build -p sluice-server --bin sluice) "
            "or set SLUICE_BIN",
            returncode=2,
        )
    return path


class Broker:
    """A running `sluice serve` process; its address comes from its readiness line."""

    def __init__(self, data_dir: pathlib.Path, extra: Optional[List[str]] = None) -> None:
        self.data_dir = data_dir
        env = dict(os.environ, SLUICE_LOG="warn")
        self.process = subprocess.Popen(
            [sluice_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)]
            + (extra or []),
            stdout=subprocess.PIPE,
            stderr=None,
            env=env,
            text=True,
        )
        assert self.process.stdout is not None
        self.addr = None
        for line in self.process.stdout:
            if line.startswith("sluice listening on http://"):
                self.addr = line[len("sluice listening on http://") :].split()[0]
                break
        if self.addr is None:
            code = self.process.wait(timeout=30)
            raise RuntimeError(f"sluice exited ({code}) before it was ready")
        # Keep draining stdout so the broker never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for _ in self.process.stdout:
            pass

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker shared by the session's tests (each test uses its own topics)."""
    b = Broker(tmp_path_factory.mktemp("broker") / "data")
    yield b
    b.stop()


@pytest.fixture
def own_broker(tmp_path: pathlib.Path) -> Iterator[Broker]:
    """A broker of the test's own, for tests that stop it."""
    b = Broker(tmp_path / "data")
    yield b
    b.stop()


@pytest.fixture(scope="session")
def url(broker: Broker) -> str:
    return broker.url


@pytest.fixture(scope="session")
def admin(url: str) -> Iterator[sluice.Admin]:
    with sluice.Admin(url) as a:
        yield a


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic(admin: sluice.Admin) -> str:
    """A fresh topic of 1 partition."""
    name = unique("t")
    admin.create_topic(name, partitions=1)
    return name


@pytest.fixture
def topic4(admin: sluice.Admin) -> str:
    """A fresh topic of 4 partitions."""
    name = unique("t4")
    admin.create_topic(name, partitions=4)
    return name


@pytest.fixture(scope="session")
def plugins_dir() -> pathlib.Path:
    """The built example plugins (ci.sh builds them; see the module docstring)."""
    path = pathlib.Path(
        os.environ.get("SLUICE_PLUGINS_DIR")
        or target_dir() / "plugins" / "wasm32-unknown-unknown" / "release"
    )
    if not (path / "json_filter.wasm").is_file():
        pytest.fail(
            f"no json_filter.wasm in {path}: build the example plugins "
            "(cd plugins && cargo build --release --target wasm32-unknown-unknown) "
            "or set SLUICE_PLUGINS_DIR"
        )
    return path


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (the one running the tests)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
