"""The built-in load generator against a real server on a loopback port."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Iterator

import pytest
from aiohttp import web

from bench.client import LoadSpec, WorkerPool
from bench.workload import Kind, Workload


@pytest.fixture
def cache_like_server() -> Iterator[str]:
    """A server in its own process (the client workers are processes too): seed 0 misses."""
    ctx = mp.get_context("spawn")
    ready = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(ready,), daemon=True)
    proc.start()
    try:
        yield f"http://127.0.0.1:{ready.get(timeout=10)}"
    finally:
        proc.terminate()
        proc.join(timeout=5)


def _serve(ready: mp.Queue[int]) -> None:
    import asyncio

    async def blob(request: web.Request) -> web.Response:
        hit = request.query.get("seed", "0") != "0"
        return web.Response(text="x" * 256, headers={"Cache-Status": "test; hit" if hit else "test; fwd=miss"})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/api/blob", blob)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.put(runner.addresses[0][1])
        await asyncio.sleep(60)  # bounded: the fixture terminates it far sooner

    asyncio.run(main())


def test_two_workers_share_the_budget_and_count_hits(cache_like_server: str) -> None:
    spec = LoadSpec(cache_like_server, Workload(Kind.FIXED, distinct=4), duration=10, connections=6, processes=2,
                    seed=1, max_requests=400)
    progress = mp.get_context("spawn").Value("q", 0)
    pool = WorkerPool.start(spec, time.time() + 1.0, progress)
    try:
        result = pool.collect(timeout=30)
    finally:
        pool.stop()
    assert result.histogram.total == 400 == sum(s.requests for s in result.timeline.seconds)
    assert result.status_counts == {"200": 400} and result.errors == {}
    assert progress.value == 400
    hits = sum(s.hits for s in result.timeline.seconds)
    misses = sum(s.misses for s in result.timeline.seconds)
    assert hits + misses == 400 and 0.6 < hits / 400 < 0.9  # one URL in four answers "miss"
    assert result.body_bytes == 400 * 256


def test_connections_and_budget_split_evenly() -> None:
    spec = LoadSpec("http://x", Workload(Kind.FIXED), 1, connections=5, processes=2, seed=1, max_requests=11)
    assert [spec.share(w) for w in range(spec.workers)] == [(3, 6), (2, 5)]
    assert LoadSpec("http://x", Workload(Kind.FIXED), 1, connections=1, processes=4, seed=1).workers == 1
