"""How long a purge takes to reach the rest of the fleet, and what a Redis outage costs a request.

Starts the demo origin, a private redis-server and two ``edgeproxy serve`` processes sharing it:
A (with the admin API) and B. All on loopback, all stopped at exit (``bench.procs``).

1. Purge propagation (``--rounds``): each round fills a new item page through B, checks that B
   now serves it from L1, POSTs a purge for it to A's admin API and, from the moment it is sent,
   asks B for the page every ``--poll-ms`` until B stops serving the cached copy. The time taken
   is the send time of the first request B answered with a miss, measured from sending /purge
   and from /purge's answer arriving (negative: B obeyed before A answered); an upper bound with
   a resolution of one poll (the interval plus one request).

2. Redis outage cost (``--requests`` per kind and phase): latency of requests through B with Redis
   up, paused (``CLIENT PAUSE`` for ``--pause-ms``; the phase sends what fits), then killed, for three kinds of request: an L1 hit (same URL
   again), an L2 hit (an object A has just filled; a miss to origin while Redis is out) and a miss
   (a new URL each time). The Cache-Status outcomes are counted too, so a change of path shows.

    python -m bench.purge_propagation [--rounds 50] [--requests 200] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import redis

from bench.procs import AdminAccess, Server, start_edgeproxy, start_origin, start_redis, terminate_as_interrupt
from bench.results import git_commit, machine_info

HOST = "shop.example"
"""One Host for both proxies (they listen on different ports), so they share cache keys."""
TOKEN = "purge-propagation-bench"
POLL_TIMEOUT_S = 5.0
"""A round gives up (and is reported as lost) if B still serves the object after this long."""
PAUSE_MARGIN_S = 0.2
"""The paused phase ends this long before the pause does, so every one of its requests met it."""
L2_SEEDS, MISS_SEEDS = 1_000_000, 2_000_000
"""Blob seeds of the two kinds of new object, disjoint so no request hits the other kind's object."""
LAG_BUCKETS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 500)


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    min_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        ms = sorted(s * 1000 for s in seconds)
        return cls(len(ms), ms[0], _percentile(ms, 50), _percentile(ms, 99), ms[-1])

    def row(self) -> str:
        return f"{self.count:>5}  {self.min_ms:>8.2f}  {self.p50_ms:>8.2f}  {self.p99_ms:>8.2f}  {self.max_ms:>8.2f}"


def _percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, round(pct / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(slots=True)
class Proxy:
    session: aiohttp.ClientSession
    url: str

    async def get(self, path: str) -> tuple[int, str, float, float]:
        """(status, Cache-Status, send time, seconds taken) of one request, body read."""
        sent = time.perf_counter()
        async with self.session.get(self.url + path, headers={"Host": HOST}) as response:
            await response.read()
            return response.status, response.headers.get("Cache-Status", ""), sent, time.perf_counter() - sent


def _served_from_cache(cache_status: str) -> bool:
    return "; hit" in cache_status


async def _purge(session: aiohttp.ClientSession, admin: AdminAccess, path: str) -> float:
    """Purge ``path`` fleet-wide; the ``perf_counter`` time the answer arrived."""
    async with session.post(f"{admin.url}/purge", json={"urls": [f"http://{HOST}{path}"]},
                            headers={"Authorization": f"Bearer {admin.token}"}) as response:
        answer = await response.json()
        returned = time.perf_counter()
        if response.status != 200 or answer.get("outcome") != "fleet":
            raise RuntimeError(f"purge of {path} answered {response.status} {answer}")
        return returned


@dataclass(frozen=True, slots=True)
class Round:
    from_issue: float
    """Seconds from sending /purge to sending the first request B answered with a miss."""
    from_return: float
    """The same, from /purge's answer arriving; negative when B obeyed before A answered."""


async def propagation(a_admin: AdminAccess, b: Proxy, session: aiohttp.ClientSession,
                      rounds: int, poll_s: float) -> tuple[list[Round], int]:
    """Time each purge from A until B stops serving the object; also the rounds lost."""
    timed: list[Round] = []
    lost = 0
    for n in range(rounds):
        path = f"/items/{n + 1}"
        await b.get(path)
        status, cache_status, _, _ = await b.get(path)
        if status != 200 or not _served_from_cache(cache_status):
            raise RuntimeError(f"B does not serve {path} from cache before the purge: {status} {cache_status}")
        # The admin API allows a client 5 calls/s sustained (after a burst of 20).
        await asyncio.sleep(0.2)
        issued = time.perf_counter()
        purge = asyncio.create_task(_purge(session, a_admin, path))
        while True:
            _, cache_status, sent, _ = await b.get(path)
            if not _served_from_cache(cache_status):
                returned = await purge
                timed.append(Round(sent - issued, sent - returned))
                break
            if sent - issued > POLL_TIMEOUT_S:
                await purge
                lost += 1
                break
            await asyncio.sleep(poll_s)
    return timed, lost


def _lag_histogram(lags: Sequence[float]) -> list[tuple[str, int]]:
    rows, lower = [], 0.0
    for upper in (*LAG_BUCKETS_MS, float("inf")):
        label = f"{lower:g}-{upper:g} ms" if upper != float("inf") else f">= {lower:g} ms"
        rows.append((label, sum(1 for lag in lags if lower <= lag * 1000 < upper)))
        lower = upper
    return rows


@dataclass(frozen=True, slots=True)
class KindResult:
    latency: Summary
    outcomes: dict[str, int]


Kind = Callable[[int], Awaitable[tuple[int, str, float, float]]]


async def outage_phase(kinds: dict[str, Kind], requests: int, offset: int,
                       within: float = float("inf")) -> dict[str, KindResult]:
    """``requests`` of each kind (fewer if ``within`` seconds run out first), interleaved so all
    kinds see the same moments of the outage."""
    seconds: dict[str, list[float]] = {name: [] for name in kinds}
    outcomes: dict[str, Counter[str]] = {name: Counter() for name in kinds}
    deadline = time.perf_counter() + within
    for i in range(requests):
        if time.perf_counter() > deadline:
            break
        for name, kind in kinds.items():
            status, cache_status, _, took = await kind(offset + i)
            seconds[name].append(took)
            outcomes[name][_outcome(status, cache_status)] += 1
    return {name: KindResult(Summary.of(seconds[name]), dict(outcomes[name])) for name in kinds}


def _outcome(status: int, cache_status: str) -> str:
    if status != 200:
        return f"status-{status}"
    if _served_from_cache(cache_status):
        return "hit-l2" if 'detail="l2"' in cache_status else "hit-l1"
    return "miss"


async def outage_cost(
    a: Proxy, b: Proxy, redis_server: Server, requests: int, pause_ms: int
) -> dict[str, dict[str, KindResult]]:
    async def l1_hit(i: int) -> tuple[int, str, float, float]:
        return await b.get("/items/1")

    async def l2_hit(i: int) -> tuple[int, str, float, float]:
        await a.get(f"/api/blob?size=2048&seed={L2_SEEDS + i}")
        return await b.get(f"/api/blob?size=2048&seed={L2_SEEDS + i}")

    async def miss(i: int) -> tuple[int, str, float, float]:
        return await b.get(f"/api/blob?size=2048&seed={MISS_SEEDS + i}")

    kinds: dict[str, Kind] = {"l1-hit": l1_hit, "l2-hit": l2_hit, "miss": miss}
    await b.get("/items/1")
    results = {"up": await outage_phase(kinds, requests, 0)}
    # CLIENT PAUSE (ALL) blocks every later command, CLIENT UNPAUSE included: the pause ends by
    # itself, and the paused phase stops sending a little before that.
    with redis.Redis(port=redis_server.port, socket_timeout=2) as control:
        control.execute_command("CLIENT", "PAUSE", pause_ms)
    paused_at = time.perf_counter()
    results["paused"] = await outage_phase(kinds, requests, requests, within=pause_ms / 1000 - PAUSE_MARGIN_S)
    await asyncio.sleep(max(0.0, paused_at + pause_ms / 1000 - time.perf_counter()))
    redis_server.kill()
    results["killed"] = await outage_phase(kinds, requests, 2 * requests)
    return results


async def measure(rounds: int, requests: int, poll_ms: float, pause_ms: int, logdir: Path) -> dict[str, object]:
    with contextlib.ExitStack() as stack:
        origin = start_origin(stack, logdir)
        redis_server = start_redis(stack, logdir)
        redis_url = f"redis://127.0.0.1:{redis_server.port}/0"
        a_server, a_admin = start_edgeproxy(stack, logdir, origin.url, workers=1, redis=redis_url, admin_token=TOKEN)
        b_server, _ = start_edgeproxy(stack, logdir, origin.url, workers=1, redis=redis_url)
        assert a_admin is not None
        connector = aiohttp.TCPConnector(limit=8)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
            a, b = Proxy(session, a_server.url), Proxy(session, b_server.url)
            rounds_timed, lost = await propagation(a_admin, b, session, rounds, poll_ms / 1000)
            outage = await outage_cost(a, b, redis_server, requests, pause_ms)
    return {
        "propagation": {
            "rounds": rounds, "lost": lost, "poll_ms": poll_ms,
            "from_issue": asdict(Summary.of([r.from_issue for r in rounds_timed])) if rounds_timed else None,
            "from_return": asdict(Summary.of([r.from_return for r in rounds_timed])) if rounds_timed else None,
            "before_return": sum(1 for r in rounds_timed if r.from_return <= 0),
            "histogram": _lag_histogram([r.from_issue for r in rounds_timed]),
        },
        "outage": {phase: {kind: {"latency": asdict(r.latency), "outcomes": r.outcomes} for kind, r in kinds.items()}
                   for phase, kinds in outage.items()},
    }


def report(results: dict[str, object]) -> None:
    prop = results["propagation"]
    assert isinstance(prop, dict)
    print(f"purge propagation A -> B over Redis pub/sub: {prop['rounds']} rounds, B polled every "
          f"{prop['poll_ms']} ms, {prop['lost']} lost; B obeyed before /purge returned in {prop['before_return']}")
    print(f"{'B stops serving, after':>28}{'n':>5}  {'min ms':>8}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}")
    for key, label in (("from_issue", "/purge sent"), ("from_return", "/purge returned")):
        if prop[key] is not None:
            print(f"{label:>28}" + Summary(**prop[key]).row())
    print("distribution (after /purge sent):")
    for label, count in prop["histogram"]:
        print(f"  {label:>14}  {count:>4}  {'#' * count}")
    print("\nrequest latency through B by Redis state (Cache-Status outcomes in brackets)")
    print(f"{'':>18}{'n':>5}  {'min ms':>8}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}  outcomes")
    outage = results["outage"]
    assert isinstance(outage, dict)
    for phase, kinds in outage.items():
        for kind, r in kinds.items():
            print(f"{phase + ' ' + kind:>18}" + Summary(**r["latency"]).row() + f"  {r['outcomes']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="purges to time (default 50)")
    parser.add_argument("--requests", type=int, default=200, help="requests per kind and Redis state (default 200)")
    parser.add_argument("--poll-ms", type=float, default=1.0, help="pause between polls of B (default 1 ms)")
    parser.add_argument("--pause-ms", type=int, default=4000,
                        help="how long Redis is paused (the paused phase may send fewer requests; default 4000)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be at least 1")
    if args.pause_ms / 1000 <= PAUSE_MARGIN_S:
        parser.error(f"--pause-ms must be more than {PAUSE_MARGIN_S * 1000:.0f}")
    with terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="purge-propagation-") as logdir:
        results = asyncio.run(measure(args.rounds, args.requests, args.poll_ms, args.pause_ms, Path(logdir)))
    report(results)
    if args.out is not None:
        document = {
            "kind": "purge-propagation",
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "git": git_commit(),
            "results": results,
        }
        args.out.write_text(json.dumps(document, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
