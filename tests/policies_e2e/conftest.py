"""Fixtures: a real proxy reading a policy directory we write, in front of a programmable origin.

Every test writes the policy it is about into ``tmp_path``, starts the proxy on port 0 with the
admin API on, and observes the policy's effect from outside: Cache-Status, the origin's request
record, and what reached the origin.
"""

from __future__ import annotations

import re
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edgeproxy.proxy.runtime import ProxyConfig, ProxyRuntime, running_proxy
from tests.proxy.harness import HeaderInput, ProxyClient, Seen, proxy_client

ADMIN_TOKEN = "t"
POLICY_FILE = "site.yaml"
EDGEPROXY = Path(sys.executable).with_name("edgeproxy")
"""The installed command, as an operator runs it."""
PROBLEM_LINE = re.compile(
    r"^(?P<file>\S+\.yaml):(?P<line>\d+): policy '(?P<policy>[^']+)': (?P<field>\S+): (?P<reason>.+)$"
)
"""One policy problem as `policy check`, serve and the admin API report it."""


def policy_text(yaml: str) -> str:
    """Dedent a YAML snippet written inline in a test."""
    return textwrap.dedent(yaml).lstrip("\n")


@dataclass(frozen=True, slots=True)
class AdminAnswer:
    status: int
    body: dict[str, Any]


@dataclass(slots=True)
class PolicyEdge:
    """One running proxy, the client talking to it, and the policy folder it reads."""

    runtime: ProxyRuntime
    client: ProxyClient
    folder: Path

    async def get(self, target: str, *, host: str | None = None, headers: HeaderInput = ()) -> Seen:
        pairs: list[tuple[str, str]] = list(headers.items() if isinstance(headers, Mapping) else headers)
        if host is not None:
            pairs.append(("Host", host))
        return await self.client.get(target, headers=pairs)

    def write(self, yaml: str, name: str = POLICY_FILE) -> None:
        (self.folder / name).write_text(policy_text(yaml), encoding="utf-8")

    async def reload(self) -> AdminAnswer:
        """POST /reload on the admin API, as an operator would."""
        return await self._admin("/reload")

    async def purge(self, *urls: str) -> AdminAnswer:
        """POST /purge of absolute ``urls`` on the admin API."""
        return await self._admin("/purge", {"urls": list(urls)})

    async def _admin(self, path: str, payload: dict[str, Any] | None = None) -> AdminAnswer:
        url = f"http://127.0.0.1:{self.runtime.admin_port}{path}"
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with aiohttp.ClientSession() as session, session.post(url, headers=headers, json=payload) as response:
            return AdminAnswer(response.status, await response.json())


ServePolicy = Callable[..., AbstractAsyncContextManager[PolicyEdge]]


@pytest.fixture
def serve_policy(tmp_path: Path, origin_url: str) -> ServePolicy:
    """``async with serve_policy(yaml, **ProxyConfig overrides) as edge:`` — the proxy in front of
    ``origin`` (or ``origin=`` another URL) with ``yaml`` as its only policy file."""

    @asynccontextmanager
    async def start(yaml: str, **overrides: Any) -> AsyncIterator[PolicyEdge]:
        folder = tmp_path / "policies"
        folder.mkdir(exist_ok=True)
        (folder / POLICY_FILE).write_text(policy_text(yaml), encoding="utf-8")
        settings: dict[str, Any] = {
            "origin": origin_url,
            "port": 0,
            "policies": folder,
            "admin": ("127.0.0.1", 0),
            "admin_token": ADMIN_TOKEN,
            "events_path": tmp_path / "events.jsonl",
            **overrides,
        }
        async with running_proxy(ProxyConfig(**settings)) as runtime, proxy_client(runtime.url) as client:
            yield PolicyEdge(runtime, client, folder)

    return start


@pytest.fixture
def unresponsive_url() -> Iterator[str]:
    """A loopback listener whose accept queue is full: new connections hang in SYN, so only a
    connect timeout gets a client out (unlike a closed port, which refuses at once)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
