"""What the fleet tests drive: proxies sharing one Redis, each with its admin API, spoken to with
one Host so every proxy computes the same cache keys; plus the Redis server's own command counts.

Everything is real: ``running_proxy`` instances in this process (each with its own FleetLink, so
the only thing they share is the Redis server), a real origin, real redis-server processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from redis.asyncio import Redis

from edgeproxy.proxy.runtime import ProxyConfig, ProxyRuntime, running_proxy
from tests.proxy.harness import ProxyClient, Seen, proxy_client
from tests.support.fixtures import L2_TIMEOUT

HOST = "shop.example"
"""Every request carries this Host: proxies on different ports then share cache keys."""
TOKEN = "fleet-test-token"


def url(path: str) -> str:
    """The absolute URL the admin API purges for ``path`` on :data:`HOST`."""
    return f"http://{HOST}{path}"


@dataclass(slots=True)
class Admin:
    """Client of one proxy's admin API."""

    session: aiohttp.ClientSession
    base_url: str

    async def call(
        self, method: str, path: str, *, body: str | None = None, token: str | None = TOKEN
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.request(method, self.base_url + path, data=body, headers=headers) as response:
            return response.status, await response.json()

    async def text(self, path: str) -> str:
        """GET ``path`` (e.g. /metrics, which is not JSON) with the token; must answer 200."""
        async with self.session.get(self.base_url + path, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            body = await response.text()
            assert response.status == 200, f"GET {path} answered {response.status}: {body[:200]}"
            return body

    async def purge(self, **selectors: Any) -> dict[str, Any]:
        """POST /purge and insist it reached the whole fleet."""
        status, answer = await self.call("POST", "/purge", body=json.dumps(selectors))
        assert (status, answer.get("outcome")) == (200, "fleet"), f"purge {selectors} answered {status} {answer}"
        return answer


@dataclass(slots=True)
class Node:
    """One proxy of the fleet, its client and its admin API."""

    name: str
    runtime: ProxyRuntime
    client: ProxyClient
    admin: Admin

    async def get(self, path: str, headers: Mapping[str, str] | None = None) -> Seen:
        return await self.client.get(path, headers={"Host": HOST, **(headers or {})})

    @property
    def bans(self) -> int:
        """Bans this proxy holds: how a test knows a purge has reached it."""
        return len(self.runtime.bans)


@asynccontextmanager
async def fleet_node(
    name: str, origin_url: str, redis_url: str | None, *, redis_timeout: float = L2_TIMEOUT
) -> AsyncIterator[Node]:
    """A proxy on a free port with L1, the shared Redis (if any) and an admin API."""
    config = ProxyConfig(
        origin=origin_url, port=0, policies=None, redis=redis_url, redis_timeout=redis_timeout,
        admin=("127.0.0.1", 0), admin_token=TOKEN,
    )
    async with running_proxy(config) as runtime, proxy_client(runtime.url) as client:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            yield Node(name, runtime, client, Admin(session, f"http://127.0.0.1:{runtime.admin_port}"))


async def redis_counts(redis_url: str) -> tuple[int, int]:
    """(commands processed, connections accepted) by the Redis server so far, less this call's."""
    client = Redis.from_url(redis_url)
    try:
        info = await client.info("stats")
    finally:
        await client.aclose()
    return int(info["total_commands_processed"]) - 1, int(info["total_connections_received"]) - 1


@dataclass(frozen=True, slots=True)
class Timed:
    seen: Seen | None
    seconds: float
    error: str | None = None


async def timed_get(node: Node, path: str) -> Timed:
    """One request through ``node``; a client-side failure is recorded, not raised."""
    started = time.perf_counter()
    try:
        seen = await node.get(path)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Timed(None, time.perf_counter() - started, repr(exc))
    return Timed(seen, time.perf_counter() - started)
