"""Shared fixtures: real Redis servers (the machine's, or our own on a free port)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

# The end-to-end suites' shared fixtures (origin, origin_url, start_proxy, proxy, client, …).
pytest_plugins = ["tests.support.fixtures"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SHARED_REDIS = os.environ.get("EDGEPROXY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _unavailable(reason: str) -> None:
    """Skip a Redis test where no Redis can be had, but never in CI: there it must fail."""
    if IN_CI:
        pytest.fail(f"Redis required in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A redis-server process we own, so tests may kill, pause or restart it."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server binary not found (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not _ping("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def redis_url() -> str:
    """URL of the machine's shared Redis (127.0.0.1:6379), skipping only where none runs."""
    host_port = SHARED_REDIS.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    if not _ping(host, int(port or 6379)):
        _unavailable(f"no Redis answering at {SHARED_REDIS}")
    return SHARED_REDIS


@pytest.fixture
def redis_namespace() -> str:
    """A unique key namespace so tests sharing one Redis never see each other's keys."""
    return f"eptest:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server on a free port, for tests that kill or pause it."""
    server = RedisServer(port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
