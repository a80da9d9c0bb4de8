"""Fixtures for the hardening tests: a programmable origin, proxies started with a policy text,
and the hypothesis profiles (``make fuzz`` selects the long one)."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from edgeproxy.proxy.runtime import ProxyConfig, ProxyRuntime, running_proxy
from tests.hardening.profiles import FUZZ_MARKER, load_profiles
from tests.proxy.harness import ProxyClient, proxy_client
from tests.support.origin import ProgrammableOrigin, serve_app

load_profiles()

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
"""The repository's policies/ folder (the demo policies personalize /api/items)."""

StartProxy = Callable[..., AbstractAsyncContextManager[ProxyRuntime]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", FUZZ_MARKER)


@pytest.fixture
def origin() -> ProgrammableOrigin:
    return ProgrammableOrigin()


@pytest.fixture
async def origin_url(origin: ProgrammableOrigin) -> AsyncIterator[str]:
    async with serve_app(origin.app()) as url:
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


@pytest.fixture
def start_proxy(write_policy: Callable[[str], Path]) -> StartProxy:
    """``async with start_proxy(origin_url, policy="yaml…", cache_size=…) as proxy:`` — L1 only
    unless ``redis=`` is given, on a free port; ``policy`` is written to a fresh policies dir."""

    def start(origin_url: str, *, policy: str | None = None, **overrides: Any) -> AbstractAsyncContextManager[ProxyRuntime]:
        if policy is not None:
            overrides["policies"] = write_policy(policy)
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
