"""Assembles one proxy process from its configuration and runs it until told to stop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from edgeproxy.accesslog import AccessLog
from edgeproxy.admin.app import make_admin_app
from edgeproxy.admin.auth import check_admin_bind
from edgeproxy.admin.control import ModelCommand, ModelOutcome, ModelResult
from edgeproxy.admin.stats import LiveStats
from edgeproxy.admin.statsboard import StatsBoard
from edgeproxy.cache.bans import Ban, BanList
from edgeproxy.demo.world import World
from edgeproxy.metrics import MULTIPROC_ENV, CircuitState, ProxyMetrics, StoreSample
from edgeproxy.personalize.runtime import PersonalizeConfig, open_personalizer
from edgeproxy.policies.model import OriginSettings
from edgeproxy.policies.reload import PolicyHolder, ReloadResult
from edgeproxy.proxy.control import EdgeControl
from edgeproxy.proxy.edge import Edge
from edgeproxy.proxy.fleet import FleetLink
from edgeproxy.proxy.localbus import LocalBus
from edgeproxy.proxy.observe import Observer
from edgeproxy.proxy.personalization import PersonalizeStage
from edgeproxy.proxy.protocol import EdgeProtocol
from edgeproxy.proxy.replay import ReplayCache
from edgeproxy.proxy.reply import Incoming, Reply
from edgeproxy.proxy.server import ConnectionSet, ServerContext, ServerLimits
from edgeproxy.proxy.upstream import Upstream
from edgeproxy.storage.breaker import BreakerState
from edgeproxy.storage.memory import MemoryStore
from edgeproxy.storage.redis import CallOutcome
from edgeproxy.storage.redisconn import DEFAULT_TIMEOUT
from edgeproxy.storage.tiered import TieredStore
from edgeproxy.tasks import cancel_and_wait

log = logging.getLogger("edgeproxy.runtime")

FEEDBACK_PATH = "/_edge/feedback"
L2_ERROR_KINDS = {CallOutcome.TIMEOUT: "timeout", CallOutcome.ERROR: "connection", CallOutcome.REJECTED: "circuit_open"}
CIRCUIT_STATES = {
    BreakerState.CLOSED: CircuitState.CLOSED, BreakerState.HALF_OPEN: CircuitState.HALF_OPEN, BreakerState.OPEN: CircuitState.OPEN,
}
TASKS_STOP_TIMEOUT = 2.0
"""How long ``stop`` waits for the background loops to end once cancelled. A loop that talks to
Redis (the event flush) can lose its cancellation inside redis-py (see ``edgeproxy.tasks``): it
is cancelled again, and after this long no longer waited for."""


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
    redis_timeout: float = DEFAULT_TIMEOUT
    """Bound on each L2 read or write, in seconds; past it the call is a miss or a dropped write."""
    origin_connect_timeout: float = 2.0
    origin_read_timeout: float = 15.0
    max_object_lifetime: float = 86_400.0
    """Upper bound on how long any object is kept; bans older than this are dropped."""
    policy_watch_interval: float = 2.0
    limits: ServerLimits = field(default_factory=ServerLimits)
    reuse_port: bool = False
    admin: tuple[str, int] | None = None
    """Admin API address; None: no admin API."""
    admin_token: str | None = None
    access_log: str | None = None
    """Path of the JSON access log, ``-`` for stdout, None for none."""
    access_log_sample: float = 1.0
    workers: int = 1
    """How many worker processes share the port (reported in /stats)."""
    models: Path | None = None
    """Ranking models directory (None: the bundled demo model, or Redis when configured)."""
    events_path: Path = Path("edgeproxy-events.jsonl")
    """Impressions and clicks without Redis (with Redis: a Redis Stream)."""
    demo_profiles: bool = False
    """Seed the demo world's user profiles (``make demo``)."""
    hosts: tuple[str, ...] = ()
    """Hosts served; any other Host gets 421 without reaching the origin. Empty: any Host."""


class ProxyRuntime:
    """One running proxy: its Edge, listening socket and background tasks."""

    def __init__(self, config: ProxyConfig, *, local_bus: LocalBus | None = None) -> None:
        self.config = config
        self.policies = PolicyHolder(config.policies)
        self.l1 = MemoryStore(config.cache_size)
        self.upstream = Upstream()
        self.bans = BanList(config.max_object_lifetime)
        self.fleet = (
            FleetLink(config.redis, max_object_lifetime=config.max_object_lifetime, timeout=config.redis_timeout)
            if config.redis else None
        )
        self.bus: FleetLink | LocalBus | None = self.fleet or local_bus
        if self.fleet is not None:
            self.fleet.store.on_call = self._record_l2
        self.edge = Edge(
            policies=lambda: self.policies.current,
            store=TieredStore(self.l1, self.fleet.store if self.fleet else None),
            fill_lock=self.fleet.fill_lock if self.fleet else None,
            fleet_ready=self.fleet.available if self.fleet else lambda: False,
            upstream=self.upstream,
            default_origin=OriginSettings(
                config.origin,
                connect_timeout=config.origin_connect_timeout,
                read_timeout=config.origin_read_timeout,
            ),
            bans=self.bans,
            max_object_lifetime=config.max_object_lifetime,
            hosts=frozenset(h.lower().rstrip(".") for h in config.hosts),
        )
        self.metrics = ProxyMetrics()
        self.metrics.add_store_source(self._l1_sample)
        self.stats = LiveStats()
        self.access_log = AccessLog(config.access_log, config.access_log_sample) if config.access_log else None
        self.personalize: PersonalizeStage | None = None
        self._personalizer_lock = asyncio.Lock()
        self._personalize_redis: Redis | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.observer = Observer(self.metrics, self.stats, self.access_log)
        self.control = EdgeControl(
            bans=self.bans,
            policies=self.policies,
            metrics=self.metrics,
            stats=self.stats,
            publish=self.bus.publish if self.bus else None,
            extra_stats=self._extra_stats,
            health_checks=self._health_checks,
            models=self._model_command,
            flush_observations=self.observer.flush,
        )
        self.control.on_reload = self._after_reload
        self._admin: web.AppRunner | None = None
        self.admin_port: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self.replay = ReplayCache()
        """Replies to request bytes seen a moment ago, written again as they were (``replay.py``)."""
        self._tasks: list[asyncio.Task[None]] = []
        self.port = config.port

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> None:
        if self.config.admin is not None:
            check_admin_bind(self.config.admin[0], self.config.admin_token)
        await self.upstream.start()
        if any(policy.personalize for policy in self.policies.current.policies):
            await self._open_personalizer()
        routes = {FEEDBACK_PATH: self._feedback}
        self._connections = ConnectionSet(self.config.limits.max_connections)
        context = ServerContext(
            handler=self.edge.handle,
            fast_path=self.edge.answer_now,
            routes=routes,
            limits=self.config.limits,
            on_reply=self.observer,
            connections=self._connections,
            replay=self.replay,
        )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: EdgeProtocol(context),
            self.config.host,
            self.config.port,
            reuse_port=self.config.reuse_port or None,
            reuse_address=True,
            backlog=1024,
        )
        sock: socket.socket = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        if self.config.policies is not None:
            self._tasks.append(
                loop.create_task(self.policies.watch(self.config.policy_watch_interval, self._on_reload))
            )
        self._tasks.append(loop.create_task(self._expire_bans()))
        self._tasks.append(loop.create_task(self.metrics.refresh_forever()))
        self._tasks.append(loop.create_task(self.observer.flush_forever()))
        self.metrics.set_policy_version(self.policies.current.version)
        if self.access_log is not None:
            self.access_log.start()
        if self.bus is not None:
            self.bus.on("purge", lambda payload: self.control.apply_ban(Ban.from_json(payload)))
            self.bus.on("policy-reload", lambda payload: self._on_reload(self.policies.reload()))
            self.bus.on("model-rollout", self._on_model_rollout)
        if self.fleet is not None:
            await self.fleet.start(on_gap=self.l1.clear_nowait)
        elif isinstance(self.bus, LocalBus):
            self.bus.start()
        multiproc_dir = os.environ.get(MULTIPROC_ENV)
        if multiproc_dir:
            board = StatsBoard(multiproc_dir)
            self.control.stats_source = lambda now: board.fleet_snapshot(self.stats, now)
            self._tasks.append(loop.create_task(board.publish_forever(self.stats, time.time)))
        if self.config.admin is not None:
            await self._start_admin(*self.config.admin)
        log.info("edgeproxy listening on %s (origin %s)", self.url, self.config.origin)

    async def _start_admin(self, host: str, port: int) -> None:
        self._admin = web.AppRunner(make_admin_app(self.control, token=self.config.admin_token), access_log=None)
        await self._admin.setup()
        site = web.TCPSite(self._admin, host, port, reuse_port=self.config.reuse_port or None)
        await site.start()
        self.admin_port = self._admin.addresses[0][1]
        log.info("admin API on http://%s:%d", host, self.admin_port)

    def _record_l2(self, op: str, outcome: CallOutcome, seconds: float) -> None:
        """RedisStore's per-call hook: L2 latency, errors and circuit state for /metrics."""
        if outcome is CallOutcome.OK:
            self.metrics.l2_duration[op].observe(seconds)
        else:
            self.metrics.l2_errors[op, L2_ERROR_KINDS[outcome]].inc()
        assert self.fleet is not None
        self.metrics.l2_circuit.set(CIRCUIT_STATES[self.fleet.store.breaker.state])

    async def _open_personalizer(self) -> None:
        """Load (and child-validate) the ranking models; until this ends lists go out unranked."""
        redis = Redis.from_url(self.config.redis, socket_timeout=2.0) if self.config.redis else None
        self._personalize_redis = redis
        profiles = World().profiles if self.config.demo_profiles else {}
        personalizer = await open_personalizer(PersonalizeConfig(
            models_dir=self.config.models, redis=redis, events_path=self.config.events_path, seed_profiles=profiles))
        self.personalize = PersonalizeStage(personalizer, self.metrics)
        await self.personalize.refresh()
        self.edge.personalize = self.personalize
        self._tasks.append(asyncio.get_running_loop().create_task(personalizer.flush_forever()))

    async def _feedback(self, inc: Incoming) -> Reply:
        if self.personalize is None:
            return await self.edge.handle(inc)  # no ranking here: the path is the origin's
        return await self.personalize.feedback_route(inc)

    async def _personalization_needed(self) -> None:
        """After a reload: load the ranker once if a policy now personalizes."""
        if self.personalize is not None or not any(p.personalize for p in self.policies.current.policies):
            return
        async with self._personalizer_lock:
            if self.personalize is None:
                await self._open_personalizer()

    async def _on_model_rollout(self, payload: dict[str, object]) -> None:
        if self.personalize is not None:
            await self.personalize.personalizer.registry.apply(payload)
            # The metric follows what is served at once, not after the slower refresh below.
            self.personalize.report_versions()
            await self.personalize.refresh()

    async def _model_command(self, command: ModelCommand) -> ModelResult:
        if self.personalize is None:
            return ModelResult(ModelOutcome.REJECTED, detail="no policy personalizes responses; no model is loaded")
        return await self.personalize.model_command(command, announce=self.bus.publish if self.bus else None)

    def _l1_sample(self) -> StoreSample:
        stats = self.l1.stats()
        return StoreSample(bytes=stats["bytes"], objects=stats["objects"], evictions=stats["evictions"])

    def _extra_stats(self) -> dict[str, object]:
        extra: dict[str, object] = {"l1": self.l1.stats(), "bans": len(self.bans), "workers": self.config.workers}
        if self.fleet is not None:
            extra["redis"] = {"state": self.fleet.state(), **self.fleet.store.stats()}
        if self.personalize is not None:
            extra["models"] = [
                {
                    "name": name,
                    "version": f"v{live.current.meta.version}" if live.current else None,
                    "canary": f"v{live.canary.meta.version} ({live.canary_share:.0%})" if live.canary else None,
                }
                for name, live in self.personalize.personalizer.registry.live.items()
            ]
        if self.access_log is not None:
            extra["accesslog_dropped"] = self.access_log.dropped
        return extra

    def _health_checks(self) -> dict[str, str]:
        return {"redis": self.fleet.state() if self.fleet else "none"}

    def request_reload(self) -> None:
        """SIGHUP: reload policies through the same path as the admin API (fleet announcement
        included); the outcome is logged."""

        async def reload() -> None:
            result = await self.control.reload_policies()
            log.info("policy reload %s: version %s %s", result.outcome.value, result.version, result.detail)

        self._spawn(reload())

    def _on_reload(self, result: ReloadResult) -> None:
        self.metrics.set_policy_version(self.policies.current.version)
        log.info(result.describe())
        self._spawn(self._after_reload())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a one-off background job; kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after_reload(self) -> None:
        """A reload may turn personalization on (load the ranker) and re-reads a models dir."""
        await self._personalization_needed()
        if self.personalize is not None:
            await self.personalize.refresh()

    async def _expire_bans(self) -> None:
        while True:
            await asyncio.sleep(60)
            self.bans.expire(self.edge.clock())

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish (up to ``drain_timeout``), then close."""
        if self._server is not None:
            self._server.close()
            # Idle keep-alive connections close at once; only requests in flight are drained.
            await self._connections.drain(drain_timeout)
            await self._server.wait_closed()
        if self._admin is not None:
            await self._admin.cleanup()
        await cancel_and_wait(self._tasks, TASKS_STOP_TIMEOUT)
        await self.edge.close()
        await self.upstream.close()
        if self.bus is not None:
            await self.bus.close()
        if self.personalize is not None:
            await self.personalize.close()
        if self._personalize_redis is not None:
            await self._personalize_redis.aclose()
        await self.edge.store.close()
        if self.access_log is not None:
            await self.access_log.close()


@asynccontextmanager
async def running_proxy(config: ProxyConfig) -> AsyncIterator[ProxyRuntime]:
    """Start a proxy for the duration of a block (tests, demo, bench)."""
    runtime = ProxyRuntime(config)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop(drain_timeout=1.0)
