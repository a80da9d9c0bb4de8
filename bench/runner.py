"""One benchmark leg: start what the scenario needs, drive load, disrupt on schedule, stop all.

A leg is the unit ``run`` executes once and ``compare`` alternates between targets. Each leg gets
a fresh origin and a fresh (cold) cache, so no leg inherits another's warm state.
"""

from __future__ import annotations

import contextlib
import enum
import json
import multiprocessing as mp
import os
import random
import secrets
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never

from tqdm import tqdm  # type: ignore[import-untyped]

from bench import client, wrk
from bench.measure import LoadResult
from bench.peers import Peer, start_peer
from bench.procs import (
    ORIGIN_READY,
    AdminAccess,
    Server,
    launch_origin,
    start_edgeproxy,
    start_redis,
    wait_ready,
)
from bench.scenarios import DISRUPT_AT, PURGE_EVERY_S, Disruption, Scenario

WORKER_START_DELAY_S = 1.0
"""Time for spawned client processes to import and connect before the shared start instant."""
FINISH_GRACE_S = 15.0


class Target(enum.Enum):
    """What the load is sent to."""

    EDGEPROXY = "edgeproxy"
    NGINX = "nginx"
    VARNISH = "varnish"
    RELAY = "relay"
    EXTERNAL = "external"
    """A server the caller started (``--target URL``): nothing is started or disrupted."""

    @property
    def peer(self) -> Peer | None:
        """The peer this target starts (each peer's target shares its name)."""
        return next((peer for peer in Peer if peer.value == self.value), None)


class Generator(enum.Enum):
    AUTO = "auto"
    WRK = "wrk"
    BUILTIN = "builtin"

    def resolve(self) -> Generator:
        if self is Generator.AUTO:
            return Generator.WRK if wrk.available() else Generator.BUILTIN
        if self is Generator.WRK and not wrk.available():
            raise RuntimeError("--generator wrk asked for, but `wrk` is not installed (apt-get install -y wrk)")
        return self


@dataclass(frozen=True, slots=True)
class RunConfig:
    scenario: Scenario
    duration: float
    connections: int
    workers: int
    """Server processes (edgeproxy --workers, nginx worker_processes, Varnish thread pools)."""
    processes: int
    """Load generator processes (built-in client) or threads (wrk)."""
    seed: int
    generator: Generator
    cache_bytes: int
    """Cache budget of every target: edgeproxy's L1 (--cache-size), nginx max_size, Varnish malloc."""
    max_requests: int | None = None
    target_url: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario.name, "summary": self.scenario.summary,
            "workload": self.scenario.workload.to_json(),
            "disruption": self.scenario.disruption.value, "redis": self.scenario.redis,
            "duration_s": self.duration, "connections": self.connections, "server_workers": self.workers,
            "generator_processes": self.processes, "seed": self.seed, "generator": self.generator.value,
            "cache_bytes": self.cache_bytes, "max_requests": self.max_requests, "target_url": self.target_url,
        }


@dataclass(slots=True)
class Leg:
    """The outcome of one leg: what was measured and what happened during it."""

    target: Target
    round: int
    load: LoadResult
    events: list[tuple[float, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        load = self.load
        return {
            "target": self.target.value, "round": self.round, "generator": load.generator,
            "duration_s": load.duration_s, "requests": load.requests, "errors": load.errors,
            "rps": load.rps, "hit_ratio": load.hit_ratio, "latency_ms": load.percentiles_ms,
            "latency_cdf_ms": load.cdf_ms, "timeline": load.timeline.to_json(),
            "status_counts": load.status_counts, "transport_errors": load.transport_errors,
            "events": [{"t": t, "what": what} for t, what in self.events],
        }


@dataclass(slots=True)
class _Stage:
    """The servers of one leg, for the disruption schedule to act on."""

    url: str
    origin: Server | None = None
    redis: Server | None = None
    admin: AdminAccess | None = None


@contextlib.contextmanager
def _staged(config: RunConfig, target: Target) -> Iterator[_Stage]:
    """Start the origin, Redis (if the scenario asks) and the target; stop them all on exit."""
    with contextlib.ExitStack() as stack:
        if target is Target.EXTERNAL:
            if config.target_url is None:
                raise ValueError("the external target needs --target URL")
            yield _Stage(config.target_url.rstrip("/"))
            return
        logdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        origin = launch_origin(stack, logdir)
        if target is Target.EDGEPROXY:
            redis = start_redis(stack, logdir) if config.scenario.redis else None
            proxy, admin = start_edgeproxy(
                stack, logdir, origin.url, workers=config.workers,
                redis=f"redis://127.0.0.1:{redis.port}/0" if redis else None,
                admin_token=secrets.token_urlsafe(16) if config.scenario.admin else None,
                cache_bytes=config.cache_bytes,
            )
            stage = _Stage(proxy.url, origin, redis, admin)
        else:
            assert target.peer is not None
            peer = start_peer(stack, target.peer, logdir, origin.port, workers=config.workers,
                              cache_bytes=config.cache_bytes)
            stage = _Stage(peer.url, origin)
        wait_ready(origin, ORIGIN_READY)
        yield stage


def check_runnable(config: RunConfig, target: Target) -> None:
    """Refuse, before anything starts, a scenario the target cannot take part in."""
    scenario = config.scenario
    if target is Target.EXTERNAL and scenario.disruption is not Disruption.NONE:
        raise ValueError(f"scenario {scenario.name} kills or purges servers it started, so it cannot use --target")
    if target.peer is not None and not scenario.peers:
        raise ValueError(f"scenario {scenario.name} needs edgeproxy (personalization, admin API or Redis); "
                         f"{target.value} has no equivalent")


def run_leg(config: RunConfig, target: Target, round_no: int = 1) -> Leg:
    """Run one leg against ``target``; every process it started is stopped when it returns."""
    check_runnable(config, target)
    generator = config.generator.resolve()
    with _staged(config, target) as stage:
        _warm_up(stage.url, config)
        schedule = _schedule(config, stage)
        if generator is Generator.WRK:
            load, events = _drive_wrk(config, stage.url, schedule, target)
        else:
            load, events = _drive_builtin(config, stage.url, schedule, target)
    return Leg(target, round_no, load, events)


WARMUP_ATTEMPTS = 5


def _warm_up(url: str, config: RunConfig) -> None:
    """Fill the target's cache before measuring. A just-started peer can fail its first backend
    fetch (Varnish answers 503 while its backend connection settles), so each warm-up request
    is retried a few times; nothing measured depends on it."""
    for path in config.scenario.workload.warmup_paths():
        for attempt in range(1, WARMUP_ATTEMPTS + 1):
            try:
                with urllib.request.urlopen(url + path, timeout=10) as resp:
                    resp.read()
                break
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == WARMUP_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)


@dataclass(slots=True)
class _Action:
    at: float
    act: Callable[[], str]
    """Does it; returns what happened, for the run's event log."""
    every: float | None = None


def _schedule(config: RunConfig, stage: _Stage) -> list[_Action]:
    at = DISRUPT_AT * config.duration
    match config.scenario.disruption:
        case Disruption.NONE:
            return []
        case Disruption.ORIGIN_DOWN:
            assert stage.origin is not None
            return [_Action(at, _killer(stage.origin))]
        case Disruption.REDIS_DOWN:
            assert stage.redis is not None
            return [_Action(at, _killer(stage.redis))]
        case Disruption.PURGE_STORM:
            admin, site, rng = stage.admin, stage.url, random.Random(config.seed)
            assert admin is not None
            return [_Action(0.5, lambda: _purge(admin, site, rng), every=PURGE_EVERY_S)]
        case unknown:
            assert_never(unknown)


def _killer(server: Server) -> Callable[[], str]:
    def kill() -> str:
        server.kill()
        return f"{server.name} killed"

    return kill


def _purge(admin: AdminAccess, site: str, rng: random.Random) -> str:
    """Purge a slice of the blob catalog: every size beginning with one digit, about 1/9 of it.
    Prefixes are absolute URLs of the site as clients address it."""
    prefix = f"{site}/api/blob?size={rng.randint(1, 9)}"
    request = urllib.request.Request(
        admin.url + "/purge", data=json.dumps({"prefixes": [prefix]}).encode(), method="POST",
        headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return f"purge {prefix} -> {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"purge {prefix} failed: {exc.code} {exc.read()[:200].decode(errors='replace')}"
    except OSError as exc:
        return f"purge {prefix} failed: {exc}"


def _run_schedule(schedule: list[_Action], elapsed: float, events: list[tuple[float, str]]) -> None:
    for action in schedule:
        if elapsed >= action.at:
            events.append((round(elapsed, 2), action.act()))
            if action.every is None:
                action.at = float("inf")
            else:
                action.at += action.every


def _progress_loop(
    config: RunConfig, target: Target, start_at: float, running: Callable[[], bool],
    done_requests: Callable[[], int] | None, schedule: list[_Action],
) -> list[tuple[float, str]]:
    """Show progress and fire the disruption schedule until the generator finishes."""
    events: list[tuple[float, str]] = []
    deadline = start_at + config.duration + FINISH_GRACE_S
    total = round(config.duration)
    with tqdm(total=total, unit="s", desc=f"{config.scenario.name} → {target.value}", leave=False,
              mininterval=0.5, dynamic_ncols=True) as bar:
        while running() and time.time() < deadline:
            elapsed = time.time() - start_at
            if elapsed >= 0:
                _run_schedule(schedule, elapsed, events)
                if done_requests is not None:
                    bar.set_postfix(requests=done_requests(), refresh=False)
                bar.update(min(total, int(elapsed)) - bar.n)
            time.sleep(0.05)
    if running():
        raise RuntimeError(f"load generator still running {FINISH_GRACE_S:.0f} s after the run should have ended")
    return events


def _drive_builtin(
    config: RunConfig, url: str, schedule: list[_Action], target: Target
) -> tuple[LoadResult, list[tuple[float, str]]]:
    spec = client.LoadSpec(url, config.scenario.workload, config.duration, config.connections,
                           config.processes, config.seed, config.max_requests)
    progress = mp.get_context("spawn").Value("q", 0)
    start_at = time.time() + WORKER_START_DELAY_S
    pool = client.WorkerPool.start(spec, start_at, progress)
    try:
        events = _progress_loop(config, target, start_at,
                                lambda: any(p.is_alive() for p in pool.procs) and pool.results.empty(),
                                lambda: int(progress.value), schedule)
        merged = pool.collect(timeout=config.duration + FINISH_GRACE_S)
    finally:
        pool.stop()
    elapsed = min(config.duration, max(0.001, time.time() - start_at))
    cdf = list(zip(*merged.histogram.cdf_ms(), strict=True))
    load = LoadResult("builtin", elapsed, merged.histogram.percentiles_ms(), cdf, merged.timeline,
                      merged.status_counts, merged.errors)
    return load, events


def _drive_wrk(
    config: RunConfig, url: str, schedule: list[_Action], target: Target
) -> tuple[LoadResult, list[tuple[float, str]]]:
    threads = max(1, min(config.processes, config.connections))
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "workload.lua"
        script.write_text(wrk.render_script(config.scenario.workload, config.seed, config.max_requests))
        env = dict(os.environ)
        if config.max_requests is not None:
            env["BENCH_MAX_PER_THREAD"] = str(max(1, config.max_requests // threads))
        start_at = time.time()
        proc = wrk.start(url, script, duration=config.duration, connections=config.connections,
                         threads=threads, env=env)
        try:
            events = _progress_loop(config, target, start_at, lambda: proc.poll() is None, None, schedule)
            stdout, _ = proc.communicate(timeout=FINISH_GRACE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with status {proc.returncode}:\n{stdout[-2000:]}")
    return wrk.to_load_result(stdout, start_at), events
