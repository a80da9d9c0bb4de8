"""The built-in load generator: a few processes, each an asyncio loop with many connections.

Used where ``wrk`` is not installed, and for scenarios wrk cannot express. Latency is measured
here, at the client, from just before the request is written to the last body byte read; one
Python process saturates near a few thousand requests per second, hence several processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing as mp
import queue
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized

import aiohttp

from bench.histogram import LatencyHistogram
from bench.measure import CacheOutcome, Second, Timeline, classify_cache_status
from bench.workload import Workload

REQUEST_TIMEOUT_S = 10.0
PROGRESS_EVERY = 64


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """One bounded load run: stops at ``duration`` seconds or ``max_requests``, whichever is first."""

    base_url: str
    workload: Workload
    duration: float
    connections: int
    processes: int
    seed: int
    max_requests: int | None = None

    @property
    def workers(self) -> int:
        return max(1, min(self.processes, self.connections))

    def share(self, worker: int) -> tuple[int, int | None]:
        """(connections, request budget) of one worker; the remainder goes to the first workers."""
        n = self.workers
        conns = self.connections // n + (worker < self.connections % n)
        if self.max_requests is None:
            return conns, None
        return conns, self.max_requests // n + (worker < self.max_requests % n)


@dataclass(slots=True)
class WorkerResult:
    histogram: LatencyHistogram
    timeline: Timeline
    status_counts: dict[str, int]
    errors: dict[str, int]
    """Transport failures by exception type (timeouts, refused connections)."""
    body_bytes: int


@dataclass(slots=True)
class WorkerPool:
    """Worker processes sending load, and the queue their results come back on."""

    procs: list[mp.process.BaseProcess]
    results: mp.Queue[WorkerResult]

    @classmethod
    def start(cls, spec: LoadSpec, start_at: float, progress: Synchronized[int]) -> WorkerPool:
        """Start the workers; they begin sending at wall time ``start_at`` so their seconds align."""
        ctx = mp.get_context("spawn")
        results: mp.Queue[WorkerResult] = ctx.Queue()
        procs: list[mp.process.BaseProcess] = []
        for worker in range(spec.workers):
            proc = ctx.Process(
                target=_worker_main, args=(spec, worker, start_at, progress, results), daemon=True,
                name=f"bench-load-{worker}",
            )
            proc.start()
            procs.append(proc)
        return cls(procs, results)

    def collect(self, timeout: float) -> WorkerResult:
        """Wait for every worker's result (at most ``timeout`` seconds) and merge them."""
        merged = WorkerResult(LatencyHistogram(), Timeline(), {}, {}, 0)
        deadline = time.monotonic() + timeout
        for _ in self.procs:
            try:
                part = self.results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(
                    f"a load worker sent no result within {timeout:.0f} s; it may have crashed "
                    "(its traceback is on stderr above)"
                ) from None
            merged.histogram.merge(part.histogram)
            merged.timeline.merge(part.timeline)
            _add_counts(merged.status_counts, part.status_counts)
            _add_counts(merged.errors, part.errors)
            merged.body_bytes += part.body_bytes
        return merged

    def stop(self) -> None:
        """Reap the workers; any still running (Ctrl-C, an error) are terminated."""
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2)


def _add_counts(into: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


def _worker_main(
    spec: LoadSpec, worker: int, start_at: float, progress: Synchronized[int], out: mp.Queue[WorkerResult]
) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        out.put(asyncio.run(_worker(spec, worker, start_at, progress)))


async def _worker(spec: LoadSpec, worker: int, start_at: float, progress: Synchronized[int]) -> WorkerResult:
    conns, budget = spec.share(worker)
    result = WorkerResult(LatencyHistogram(), Timeline(), {}, {}, 0)
    stream = spec.workload.stream(spec.seed, worker)
    # One iterator shared by every connection of this worker, so the budget is spent exactly once.
    requests = stream if budget is None else itertools.islice(stream, budget)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + spec.duration
    connector = aiohttp.TCPConnector(limit=conns)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(spec.base_url, connector=connector, timeout=timeout,
                                     auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()) as session:

        async def connection() -> None:
            done = 0
            for request in requests:
                if time.monotonic() >= deadline:
                    break
                await _one(session, request.path, dict(request.headers), result, start_at)
                done += 1
                if done % PROGRESS_EVERY == 0:
                    with progress.get_lock():
                        progress.value += PROGRESS_EVERY
            with progress.get_lock():
                progress.value += done % PROGRESS_EVERY

        await asyncio.gather(*(connection() for _ in range(conns)))
    return result


async def _one(
    session: aiohttp.ClientSession, path: str, headers: dict[str, str], result: WorkerResult, start_at: float
) -> None:
    started = time.perf_counter()
    try:
        async with session.get(path, headers=headers, allow_redirects=False) as resp:
            body = await resp.read()
            status = resp.status
            outcome = classify_cache_status(resp.headers.get("Cache-Status"))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
        second = _second_now(result, start_at)
        second.requests += 1
        second.errors += 1
        return
    # Counted in the second the answer arrived, as wrk's response() does.
    second = _second_now(result, start_at)
    second.requests += 1
    result.histogram.record((time.perf_counter() - started) * 1e6)
    result.body_bytes += len(body)
    key = str(status)
    result.status_counts[key] = result.status_counts.get(key, 0) + 1
    if status >= 500:
        second.errors += 1
    if outcome is CacheOutcome.HIT:
        second.hits += 1
    elif outcome is CacheOutcome.MISS:
        second.misses += 1


def _second_now(result: WorkerResult, start_at: float) -> Second:
    return result.timeline.at(max(0, int(time.time() - start_at)))
