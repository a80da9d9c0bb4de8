"""Fixtures: a programmable origin on port 0, the real proxy in front of it, and a client.

``client`` talks to a proxy whose origin is ``origin``; tests that need another origin (a raw
byte-level one, a dead port, a fault proxy) start their own proxy with ``start_proxy`` and
connect with ``tests.proxy.harness.proxy_client``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from edgeproxy.proxy.runtime import ProxyConfig, ProxyRuntime, running_proxy
from tests.proxy.harness import InFlight, ProxyClient, proxy_client
from tests.support.origin import ProgrammableOrigin, serve_app

SMALL_OBJECTS_POLICY = """
policies:
  small:
    match:
      hosts: ["*"]
      paths: ["/*"]
    store:
      max_object_size: 16KB
"""
"""A policy file under which bodies above 16 KiB stream through unstored."""

StartProxy = Callable[..., AbstractAsyncContextManager[ProxyRuntime]]


@pytest.fixture
def origin() -> ProgrammableOrigin:
    return ProgrammableOrigin()


@pytest.fixture
def inflight() -> InFlight:
    return InFlight()


@pytest.fixture
async def origin_url(origin: ProgrammableOrigin, inflight: InFlight) -> AsyncIterator[str]:
    app = origin.app()
    app.middlewares.append(inflight.middleware)
    async with serve_app(app) as url:
        yield url


@pytest.fixture
def start_proxy() -> StartProxy:
    """``async with start_proxy(origin_url, origin_read_timeout=0.3) as proxy:`` — a proxy with
    L1 only and the built-in policy, on a free port."""

    def start(origin_url: str, **overrides: Any) -> AbstractAsyncContextManager[ProxyRuntime]:
        settings: dict[str, Any] = {"port": 0, "policies": None, **overrides}
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
