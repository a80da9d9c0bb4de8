"""Storage test fixtures: a Redis Cluster of our own."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import IN_CI, free_port


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster of our own redis-server processes; yields a redis+cluster:// URL."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        if IN_CI:
            pytest.fail("redis-server and redis-cli are required in CI for the cluster tests")
        pytest.skip("redis-server / redis-cli not installed")
    workdir = tmp_path_factory.mktemp("cluster")
    ports = [free_port() for _ in range(3)]
    procs = [
        subprocess.Popen(
            # An explicit bus port: the default (port + 10000) may be taken or beyond 65535.
            [server, "--port", str(port), "--cluster-port", str(free_port()), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf", "--dir", str(workdir),
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        _wait_for(lambda: all(_cli(cli, p, "PING") == "PONG" for p in ports), "every node to answer PING")
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )
        _wait_for(lambda: all("cluster_state:ok" in _cli(cli, p, "CLUSTER", "INFO") for p in ports),
                  "every node to report cluster_state:ok")
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _cli(cli: str, port: int, *command: str) -> str:
    result = subprocess.run([cli, "-p", str(port), *command], capture_output=True, text=True, timeout=5)
    return result.stdout.strip()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis Cluster setup: gave up after {timeout}s waiting for {what}")
        time.sleep(0.05)
