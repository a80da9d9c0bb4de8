"""Assembles one proxy process from its configuration and runs it until told to stop."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgeproxy.cache.bans import BanList
from edgeproxy.policies.model import OriginSettings
from edgeproxy.policies.reload import PolicyHolder, ReloadResult
from edgeproxy.proxy.edge import Edge
from edgeproxy.proxy.server import ServerLimits, make_handler, make_server
from edgeproxy.proxy.upstream import Upstream
from edgeproxy.storage.memory import MemoryStore
from edgeproxy.storage.null import NullStore
from edgeproxy.storage.tiered import TieredStore

log = logging.getLogger("edgeproxy.runtime")


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    origin: str
    """Default origin base URL, e.g. ``http://127.0.0.1:8000``."""
    host: str = "127.0.0.1"
    port: int = 8080
    """0 picks a free port (tests)."""
    cache_size: int = 256 * 1024 * 1024
    policies: Path | None = None
    redis: str | None = None
    origin_connect_timeout: float = 2.0
    origin_read_timeout: float = 15.0
    max_object_lifetime: float = 86_400.0
    """Upper bound on how long any object is kept; bans older than this are dropped."""
    policy_watch_interval: float = 2.0
    limits: ServerLimits = field(default_factory=ServerLimits)
    reuse_port: bool = False


class ProxyRuntime:
    """One running proxy: its Edge, listening socket and background tasks."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.policies = PolicyHolder(config.policies)
        self.l1 = MemoryStore(config.cache_size)
        self.upstream = Upstream()
        self.bans = BanList(config.max_object_lifetime)
        self.edge = Edge(
            policies=lambda: self.policies.current,
            store=TieredStore(self.l1, NullStore()),
            upstream=self.upstream,
            default_origin=OriginSettings(
                config.origin,
                connect_timeout=config.origin_connect_timeout,
                read_timeout=config.origin_read_timeout,
            ),
            bans=self.bans,
            max_object_lifetime=config.max_object_lifetime,
        )
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = config.port

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> None:
        await self.upstream.start()
        handler = make_handler(self.edge)
        server = make_server(handler, self.config.limits)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            server,
            self.config.host,
            self.config.port,
            reuse_port=self.config.reuse_port or None,
            reuse_address=True,
            backlog=1024,
        )
        self._web_server = server
        sock: socket.socket = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        if self.config.policies is not None:
            self._tasks.append(
                loop.create_task(self.policies.watch(self.config.policy_watch_interval, self._on_reload))
            )
        self._tasks.append(loop.create_task(self._expire_bans()))
        log.info("edgeproxy listening on %s (origin %s)", self.url, self.config.origin)

    def reload_policies(self) -> ReloadResult:
        result = self.policies.reload()
        self._on_reload(result)
        return result

    def _on_reload(self, result: ReloadResult) -> None:
        log.info(result.describe())

    async def _expire_bans(self) -> None:
        while True:
            await asyncio.sleep(60)
            self.bans.expire(self.edge.clock())

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish (up to ``drain_timeout``), then close."""
        if self._server is not None:
            self._server.close()
            await self._web_server.shutdown(drain_timeout)
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.edge.close()
        await self.upstream.close()
        await self.edge.store.close()


@asynccontextmanager
async def running_proxy(config: ProxyConfig) -> AsyncIterator[ProxyRuntime]:
    """Start a proxy for the duration of a block (tests, demo, bench)."""
    runtime = ProxyRuntime(config)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop(drain_timeout=1.0)
