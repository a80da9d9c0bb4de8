"""Personalization must not cost hit ratio: the same request stream through a proxy with the
demo policies' personalize block ON and OFF.

Personalization happens at delivery, on a copy of the one shared cached list, so the cache key
(category and limit) and therefore the hit ratio must not change. Each leg gets a fresh demo
origin and a cold proxy (in this process, on 127.0.0.1 port 0) and replays the same seeded
stream: Zipf over categories and limits, Zipf over users in the ``uid`` cookie. Prints both hit
ratios (from Cache-Status), the ranking outcomes, and the latency ranking adds (Server-Timing
``rank;dur``). Exits 1 when the hit ratios differ.

    python -m bench.personalize_hit_ratio [--requests 5000] [--users 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import yaml
from aiohttp import web

from bench.workload import zipf_cdf, zipf_ranks
from edgeproxy.demo.catalog import CATEGORIES
from edgeproxy.demo.origin import make_app
from edgeproxy.demo.world import user_ids
from edgeproxy.proxy.runtime import ProxyConfig, running_proxy

DEMO_POLICIES = Path(__file__).resolve().parents[1] / "policies" / "demo.yaml"
LIMITS = (20, 10, 50, 100, 200)
"""Page sizes, most requested first (Zipf over this order)."""
_RANK_DUR = re.compile(r"(?:^|,)\s*rank;dur=([\d.]+)")
_EDGE_DUR = re.compile(r"(?:^|,)\s*edge;dur=([\d.]+)")
_DETAIL = re.compile(r'detail="(?:\S+ )?(ranked|deadline|no-model|error) model=')


@dataclass(frozen=True, slots=True)
class Request:
    path: str
    uid: str
    limit: int


def request_stream(n: int, users: int, alpha: float, seed: int) -> list[Request]:
    """``n`` requests: category, limit and user each drawn by Zipf(``alpha``), reproducibly."""
    rng = np.random.default_rng(seed)
    categories = zipf_ranks(zipf_cdf(len(CATEGORIES), alpha), n, rng)
    limits = zipf_ranks(zipf_cdf(len(LIMITS), alpha), n, rng)
    who = zipf_ranks(zipf_cdf(users, alpha), n, rng)
    ids = user_ids(users)
    return [
        Request(f"/api/items?category={CATEGORIES[c]}&limit={LIMITS[lim]}", ids[u], LIMITS[lim])
        for c, lim, u in zip(categories, limits, who, strict=True)
    ]


@dataclass(slots=True)
class Leg:
    """What one leg's client saw."""

    name: str
    hits: int = 0
    total: int = 0
    errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rank_ms: list[float] = field(default_factory=list)
    rank_ms_by_limit: dict[int, list[float]] = field(default_factory=dict)
    edge_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def record(self, request: Request, status: int, cache_status: str, server_timing: str) -> None:
        self.total += 1
        if status != 200:
            self.errors += 1
        # RFC 9211: "hit" is a bare parameter of the list member (collapsed waiters included).
        if "hit" in (p.strip() for p in cache_status.split(";")[1:]):
            self.hits += 1
        if (outcome := _DETAIL.search(cache_status)) is not None:
            self.outcomes[outcome[1]] += 1
        if (rank := _RANK_DUR.search(server_timing)) is not None:
            self.rank_ms.append(float(rank[1]))
            self.rank_ms_by_limit.setdefault(request.limit, []).append(float(rank[1]))
        if (edge := _EDGE_DUR.search(server_timing)) is not None:
            self.edge_ms.append(float(edge[1]))


def policy_dir(directory: Path, *, personalize: bool) -> Path:
    """``policies/demo.yaml`` as shipped, or without the ``/api/items`` personalize block."""
    doc = yaml.safe_load(DEMO_POLICIES.read_text())
    if not personalize:
        del doc["policies"]["demo-items"]["personalize"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "demo.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


@asynccontextmanager
async def demo_origin() -> AsyncIterator[str]:
    runner = web.AppRunner(make_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def run_leg(name: str, policies: Path, stream: list[Request], concurrency: int, events: Path) -> Leg:
    leg = Leg(name)
    async with demo_origin() as origin:
        config = ProxyConfig(origin=origin, port=0, policies=policies, demo_profiles=True, events_path=events)
        async with running_proxy(config) as proxy, aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            todo: Iterator[Request] = iter(stream)

            async def worker() -> None:
                for request in todo:  # one shared iterator: each request is sent exactly once
                    async with client.get(proxy.url + request.path, headers={"Cookie": f"uid={request.uid}"}) as resp:
                        await resp.read()
                        leg.record(
                            request,
                            resp.status,
                            resp.headers.get("Cache-Status", ""),
                            resp.headers.get("Server-Timing", ""),
                        )

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            leg.seconds = time.perf_counter() - started
    return leg


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.3f}" if values else "-"


def report(on: Leg, off: Leg, distinct: int) -> str:
    lines = [
        f"{'leg':<16} {'requests':>8} {'hits':>6} {'hit ratio':>9} {'errors':>6} {'req/s':>7} "
        f"{'edge p50 ms':>11} {'edge p99 ms':>11}",
    ]
    for leg in (on, off):
        lines.append(
            f"{leg.name:<16} {leg.total:>8} {leg.hits:>6} {leg.hit_ratio:>9.4f} {leg.errors:>6} "
            f"{leg.total / leg.seconds:>7.0f} {_pct(leg.edge_ms, 50):>11} {_pct(leg.edge_ms, 99):>11}"
        )
    lines += [
        f"expected hit ratio (1 - distinct keys / requests): {1 - distinct / on.total:.4f} ({distinct} keys)",
        f"ranking outcomes (personalize on): {dict(on.outcomes)}",
        f"rank;dur added per response (ms): p50 {_pct(on.rank_ms, 50)}  p99 {_pct(on.rank_ms, 99)}  "
        f"max {max(on.rank_ms, default=0):.3f}  ({len(on.rank_ms)} samples)",
        *(
            f"  limit={limit:<4} p50 {_pct(ms, 50)}  p99 {_pct(ms, 99)}  ({len(ms)} samples)"
            for limit, ms in sorted(on.rank_ms_by_limit.items())
        ),
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    stream = request_stream(args.requests, args.users, args.alpha, args.seed)
    with tempfile.TemporaryDirectory(prefix="p13n-bench-") as tmp:
        root = Path(tmp)
        on = await run_leg(
            "personalize on", policy_dir(root / "on", personalize=True), stream, args.concurrency, root / "ev-on.jsonl"
        )
        off = await run_leg(
            "personalize off",
            policy_dir(root / "off", personalize=False),
            stream,
            args.concurrency,
            root / "ev-off.jsonl",
        )
    print(report(on, off, len({r.path for r in stream})))
    if on.hits != off.hits:
        print(
            f"FAIL: personalization changed the hit ratio ({on.hit_ratio:.4f} vs {off.hit_ratio:.4f})", file=sys.stderr
        )
        return 1
    print("OK: hit ratio identical with personalization on and off")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.personalize_hit_ratio", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--users", type=int, default=1000, help="user ids u0001… (the demo world's profiles)")
    parser.add_argument("--alpha", type=float, default=0.9, help="Zipf exponent for categories, limits and users")
    parser.add_argument("--concurrency", type=int, default=8, help="client connections")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.users < 1 or args.concurrency < 1:
        parser.error("--requests, --users and --concurrency must be at least 1")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
