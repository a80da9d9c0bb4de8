"""Fixtures shared by the end-to-end suites (registered for all tests by tests/conftest.py):
a programmable origin on port 0 and a proxy in front of it. A suite may override any of them."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from edgeproxy.proxy.runtime import ProxyConfig, ProxyRuntime, running_proxy
from tests.proxy.harness import InFlight, ProxyClient, proxy_client
from tests.support.origin import ProgrammableOrigin, serve_app

StartProxy = Callable[..., AbstractAsyncContextManager[ProxyRuntime]]


@pytest.fixture
def origin() -> ProgrammableOrigin:
    return ProgrammableOrigin()


@pytest.fixture
def inflight() -> InFlight:
    """How many requests ``origin`` is handling at once, and the peak."""
    return InFlight()


@pytest.fixture
async def origin_url(origin: ProgrammableOrigin, inflight: InFlight) -> AsyncIterator[str]:
    app = origin.app()
    app.middlewares.append(inflight.middleware)
    async with serve_app(app) as url:
        yield url


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str], Path]:
    """``write_policy(yaml_text)`` writes ``policies/p.yaml`` (dedented) and returns the folder."""

    def write(text: str) -> Path:
        folder = tmp_path / "policies"
        folder.mkdir(exist_ok=True)
        (folder / "p.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return folder

    return write


L2_TIMEOUT = 0.5
"""The bound on each L2 call of a proxy a test runs with Redis, unless the test asks for another.
The shipped 25 ms counts waits for the event loop too, and here proxies, their clients and the
test share one loop in a process that has run the whole suite: one garbage-collection pause can
pass 25 ms and turn an expected L2 hit into a miss. Tests of a slow, vanished or cold Redis pass
the shipped bound (``redisconn.DEFAULT_TIMEOUT``)."""


@pytest.fixture
def start_proxy(write_policy: Callable[[str], Path]) -> StartProxy:
    """``async with start_proxy(origin_url, policy="yaml…", origin_read_timeout=0.3) as proxy:`` —
    L1 only unless ``redis=`` is given (then with an L2 bound of :data:`L2_TIMEOUT`), the built-in
    policy unless ``policy`` (written to a fresh policies dir) or ``policies=`` is given, on a free
    port."""

    def start(origin_url: str, *, policy: str | None = None, **overrides: Any) -> AbstractAsyncContextManager[ProxyRuntime]:
        if policy is not None:
            overrides["policies"] = write_policy(policy)
        settings: dict[str, Any] = {"port": 0, "policies": None, "redis_timeout": L2_TIMEOUT, **overrides}
        return running_proxy(ProxyConfig(origin=origin_url, **settings))

    return start


@pytest.fixture
async def proxy(start_proxy: StartProxy, origin_url: str) -> AsyncIterator[ProxyRuntime]:
    async with start_proxy(origin_url) as runtime:
        yield runtime


@pytest.fixture
async def client(proxy: ProxyRuntime) -> AsyncIterator[ProxyClient]:
    async with proxy_client(proxy.url) as connected:
        yield connected
