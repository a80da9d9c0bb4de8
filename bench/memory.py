"""Memory per cached object and the L1 byte bound, measured through the real proxy (issue #7).

Targets: a cached object costs at most its body + 1 KB, and the memory L1 really retains stays
within 5 % of its configured byte budget. ``tests/storage/test_memory.py`` checks the
MemoryStore's accounting on synthetic entries; this measures what the proxy keeps after serving
real responses from the demo origin (its own process, so none of its memory is counted).

* **overhead**: for each body size, a proxy with a cache large enough for everything fetches N
  distinct ``/api/blob`` URLs once (misses), then twice more (hits, checked via ``Cache-Status``;
  the third pass because the replay memo remembers only repeated hits). tracemalloc counts the
  bytes still allocated after the client session is closed and a ``gc.collect()``, relative to a
  baseline taken after a warm-up whose objects were dropped. Then the proxy's memos are emptied
  one at a time (replay memo and its doorkeeper, rendered-hit memo, route memo) and finally the
  L1, and each drop in retained memory is that holder's share: a memo is charged only what it
  alone holds; what it shares with the L1 entry (the body, the key) is charged to the L1. What
  remains ("other") is mostly the live request statistics (latency window, top keys).
* **bound**: a proxy with a small cache (``--cache-size``) fetches ``--bound-factor`` times its
  budget in distinct objects (misses only); the bytes the L1 really retains are compared with
  the budget (target ratio <= 1.05), next to what the L1 charges itself (``edgeproxy_l1_bytes``)
  and its eviction count.
* **control**: the same client fetching N distinct URLs from the origin directly, no proxy: what
  the client itself leaves behind after its session is closed (the noise floor, ~0).

tracemalloc counts the sizes Python asks for, not allocator rounding or fragmentation, so RSS
runs somewhat higher. The proxy runs in-process on the standard asyncio loop (production runs
uvloop; the objects kept are the same).

    python -m bench.memory [--objects 2000] [--sizes 2,2048,51200] [--cache-size 4MB]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import procs
from bench.cachesim import parse_size
from bench.measure import CacheOutcome, classify_cache_status
from bench.results import git_commit, machine_info, versions, write_json
from bench.workload import blob_path, object_sizes
from edgeproxy.policies.routing import RouteCache
from edgeproxy.proxy.edge import RENDERED_HITS
from edgeproxy.proxy.replay import CAPACITY as REPLAY_CAPACITY
from edgeproxy.proxy.replay import ReplayCache
from edgeproxy.proxy.runtime import ProxyConfig, ProxyRuntime, running_proxy

OVERHEAD_TARGET = 1024
"""Issue #7: bytes a cached object may cost beyond its body."""
BOUND_TARGET = 1.05
"""Issue #7: retained L1 memory over its byte budget."""
WARMUP_SEED = 1 << 30
"""Warm-up URLs take seeds from here, measured ones from 0: never the same URL."""
MEMO_CAPACITY = {
    "replay_memo": REPLAY_CAPACITY,
    "replay_seen": 4 * REPLAY_CAPACITY,  # ReplayCache.wants: the doorkeeper empties at 4x capacity
    "rendered_memo": RENDERED_HITS,
    "route_memo": RouteCache().capacity,
}
"""Entries each memo holds at most (it is emptied when full): its cost is bounded by count, not
bytes, and outside the L1 budget."""
SETTLE_S = 0.1
"""Pause after closing a client session, so the proxy closes its side and flushes its batches."""


@dataclass(frozen=True, slots=True)
class Options:
    objects: int = 2000
    sizes: tuple[int, ...] = (2, 2048, 51_200)
    cache_size: int = 4 * 1024 * 1024
    bound_factor: float = 4.0
    concurrency: int = 8
    warmup: int = 256
    seed: int = 1

    def to_json(self) -> dict[str, object]:
        return {"objects": self.objects, "sizes": list(self.sizes), "cache_size": self.cache_size,
                "bound_factor": self.bound_factor, "concurrency": self.concurrency, "warmup": self.warmup,
                "seed": self.seed}


# ---------------------------------------------------------------- measuring retained memory

def retained() -> int:
    """Bytes allocated and still alive (tracemalloc), after collecting any cycles."""
    for _ in range(3):
        gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _holders(runtime: ProxyRuntime) -> list[tuple[str, Callable[[], int], Callable[[], None]]]:
    """What keeps memory per object, emptied in this order: (name, entries held, empty it).
    ``replay_memo`` is the remembered replies, ``replay_seen`` the doorkeeper's request bytes.

    A measurement reaches into the proxy's memos on purpose; if one is renamed this fails loudly
    rather than measure the wrong thing. The replay memo lives in the server context, which the
    runtime does not keep: it is found among the live objects.
    """
    edge = runtime.edge
    replays = [o for o in gc.get_objects() if isinstance(o, ReplayCache)]

    def clear_replies() -> None:
        for cache in replays:
            cache._memo.clear()

    def clear_seen() -> None:
        for cache in replays:
            cache._seen.clear()

    def clear_routes() -> None:
        edge.routes = RouteCache(edge.routes.capacity)

    return [
        ("replay_memo", lambda: sum(len(c) for c in replays), clear_replies),
        ("replay_seen", lambda: sum(len(c._seen) for c in replays), clear_seen),
        ("rendered_memo", lambda: len(edge._rendered), edge._rendered.clear),
        ("route_memo", lambda: len(edge.routes), clear_routes),
        ("l1", lambda: len(runtime.l1), runtime.l1.clear_nowait),
    ]


def release(runtime: ProxyRuntime) -> tuple[dict[str, int], dict[str, int]]:
    """Empty each holder in turn: (bytes freed by each, entries each held)."""
    freed: dict[str, int] = {}
    held: dict[str, int] = {}
    holders = _holders(runtime)
    before = retained()
    for name, count, clear in holders:
        held[name] = count()
        clear()
        after = retained()
        freed[name] = before - after
        before = after
    return freed, held


# ---------------------------------------------------------------- the client

@dataclass(slots=True)
class Fetched:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    body_bytes: int = 0


async def fetch_all(base: str, paths: Sequence[str], concurrency: int) -> Fetched:
    """GET every path once with ``concurrency`` requests in flight; the session is closed (and
    the proxy given a moment to close its side) before this returns."""
    out = Fetched()
    queue = iter(paths)

    async def worker(session: aiohttp.ClientSession) -> None:
        for path in queue:
            try:
                async with session.get(base + path) as resp:
                    body = await resp.read()
                    status = resp.status
                    outcome = classify_cache_status(resp.headers.get("Cache-Status"))
            except aiohttp.ClientError:
                out.errors += 1
                continue
            if status != 200:
                out.errors += 1
            elif outcome is CacheOutcome.HIT:
                out.hits += 1
            else:
                out.misses += 1
            out.body_bytes += len(body)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    await asyncio.sleep(SETTLE_S)
    return out


def _blobs(sizes: Sequence[int], first_seed: int) -> list[str]:
    return [blob_path(size, first_seed + i) for i, size in enumerate(sizes)]


async def _warm_up(runtime: ProxyRuntime, opts: Options, size: int) -> int:
    """Fill the lazily built state (connection pools, bounded library caches, metric labels)
    with URLs never used again, drop what they left in the memos and the L1: the baseline."""
    paths = _blobs([size] * opts.warmup, WARMUP_SEED)
    await fetch_all(runtime.url, paths, opts.concurrency)
    await fetch_all(runtime.url, paths, opts.concurrency)
    for _, _, clear in _holders(runtime):
        clear()
    return retained()


# ---------------------------------------------------------------- the legs


@dataclass(slots=True)
class Trace:
    """What a traced proxy retained: ``baseline`` after the warm-up; on leaving the block, what
    emptying each holder freed (``freed``), the entries each held (``held``), and what was still
    retained after that (``residual``), all relative to the baseline where they are totals."""

    runtime: ProxyRuntime
    baseline: int
    freed: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    residual: int = 0

    def retained(self) -> int:
        """Bytes retained now beyond the baseline."""
        return retained() - self.baseline


@asynccontextmanager
async def traced_proxy(origin: str, opts: Options, cache_size: int, warm_size: int) -> AsyncIterator[Trace]:
    """A proxy in this process with tracemalloc on, warmed up (``_warm_up``); its holders are
    emptied one at a time when the block ends, before tracing stops."""
    async with running_proxy(ProxyConfig(origin=origin, port=0, cache_size=cache_size)) as runtime:
        tracemalloc.start()
        try:
            trace = Trace(runtime, await _warm_up(runtime, opts, warm_size))
            yield trace
            trace.freed, trace.held = release(runtime)
            trace.residual = trace.retained()
        finally:
            tracemalloc.stop()

async def control_leg(origin: str, opts: Options) -> dict[str, Any]:
    """What the client alone leaves behind: the same fetches, straight from the origin."""
    size = 2048
    paths = _blobs([size] * opts.objects, 0)
    tracemalloc.start()
    try:
        await fetch_all(origin, _blobs([size] * opts.warmup, WARMUP_SEED), opts.concurrency)
        baseline = retained()
        got = await fetch_all(origin, paths, opts.concurrency)
        left = retained() - baseline
    finally:
        tracemalloc.stop()
    return {"requests": opts.objects, "errors": got.errors, "retained_bytes": left,
            "retained_per_request": left / opts.objects}


async def overhead_leg(origin: str, opts: Options, size: int) -> dict[str, Any]:
    """Retained bytes per object for one body size, with a cache that never evicts."""
    n = opts.objects
    cache_size = max(256 * 1024 * 1024, 4 * n * (size + 4096))
    paths = _blobs([size] * n, 0)  # before tracing: the client's list is not the proxy's cost
    async with traced_proxy(origin, opts, cache_size, size) as trace:
        url = trace.runtime.url
        fill = await fetch_all(url, paths, opts.concurrency)
        after_fill = trace.retained()
        hits = await fetch_all(url, paths, opts.concurrency)
        # The replay memo remembers a hit only for request bytes hit before: a third pass
        # gives it what hot objects give it.
        again = await fetch_all(url, paths, opts.concurrency)
        after_hits = trace.retained()
        l1 = trace.runtime.l1.stats()
    freed, held, residual = trace.freed, trace.held, trace.residual
    body = n * size
    per_object = {
        "total": (after_hits - body) / n,
        "after_fill": (after_fill - body) / n,
        "l1": (freed["l1"] - body) / n,
        **{name: freed[name] / n for name in MEMO_CAPACITY},
        "other": residual / n,
    }
    return {
        "body_size": size,
        "objects": n,
        "fill": {"misses": fill.misses, "hits": fill.hits, "errors": fill.errors, "body_bytes": fill.body_bytes},
        "second_pass": {"hits": hits.hits, "misses": hits.misses, "errors": hits.errors},
        "third_pass": {"hits": again.hits, "misses": again.misses, "errors": again.errors},
        "retained_bytes": {"after_fill": after_fill, "after_hits": after_hits, **freed, "other": residual},
        "entries_held": held,
        "bytes_per_entry_held": {name: freed[name] / count for name, count in held.items() if count and name != "l1"},
        "memo_capacity": MEMO_CAPACITY,
        "per_object_overhead": per_object,
        "l1_charged": {
            "bytes": l1["bytes"], "objects": l1["objects"], "evictions": l1["evictions"],
            "per_object_overhead": (l1["bytes"] - body) / n,
        },
        "target_bytes": OVERHEAD_TARGET,
        "meets_target": per_object["l1"] <= OVERHEAD_TARGET,
        "meets_target_with_memos": per_object["total"] <= OVERHEAD_TARGET,
    }


def bound_mixes(opts: Options) -> dict[str, list[int]]:
    """Body sizes fetched by each bound leg: ``bound_factor`` budgets of charged bytes (body
    plus ~1 KB), all distinct URLs: fixed 2 KB bodies, and the workload's heavy-tailed sizes."""

    def enough(sizes: Sequence[int]) -> list[int]:
        goal, total, out = opts.bound_factor * opts.cache_size, 0, []
        for s in sizes:
            if total >= goal:
                break
            out.append(s)
            total += s + OVERHEAD_TARGET
        return out

    fixed = enough([2048] * int(opts.bound_factor * opts.cache_size // 2048 + 1))
    mixed = enough([int(s) for s in object_sizes(int(opts.bound_factor * opts.cache_size // 256 + 1), opts.seed)])
    return {"2k": fixed, "mixed": mixed}


async def bound_leg(origin: str, opts: Options, name: str, sizes: list[int]) -> dict[str, Any]:
    """Retained L1 bytes vs the budget after fetching several budgets' worth of distinct objects."""
    budget = opts.cache_size
    paths = _blobs(sizes, 0)
    async with traced_proxy(origin, opts, budget, 2048) as trace:
        evicted_before = trace.runtime.l1.stats()["evictions"]
        got = await fetch_all(trace.runtime.url, paths, opts.concurrency)
        total = trace.retained()
        l1 = trace.runtime.l1.stats()
    freed, held, residual = trace.freed, trace.held, trace.residual
    return {
        "mix": name,
        "budget": budget,
        "requested": {"objects": len(sizes), "body_bytes": sum(sizes), "misses": got.misses,
                      "hits": got.hits, "errors": got.errors},
        "l1_charged": {"bytes": l1["bytes"], "objects": l1["objects"], "evictions": l1["evictions"] - evicted_before},
        "retained_bytes": {"total": total, **freed, "other": residual},
        "entries_held": held,
        "ratio": freed["l1"] / budget,
        "ratio_total": total / budget,
        "real_over_charged": freed["l1"] / l1["bytes"] if l1["bytes"] else None,
        "target_ratio": BOUND_TARGET,
        "meets_target": freed["l1"] <= BOUND_TARGET * budget,
    }


async def measure(origin: str, opts: Options) -> dict[str, Any]:
    control = await control_leg(origin, opts)
    overhead = [await overhead_leg(origin, opts, size) for size in opts.sizes]
    bound = [await bound_leg(origin, opts, name, sizes) for name, sizes in bound_mixes(opts).items()]
    return {"control": control, "overhead": overhead, "bound": bound}


# ---------------------------------------------------------------- output

def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_table(results: dict[str, Any]) -> None:
    print(f"client-only control: {results['control']['retained_per_request']:.1f} B retained per request\n")
    print("per-object overhead beyond the body (bytes; target <= 1024 in the L1)")
    print(f"{'body':>7} {'objects':>7} {'hits':>5} | {'L1 real':>8} {'L1 charged':>10} | "
          f"{'replay':>7} {'seen':>5} {'rendered':>8} {'route':>7} {'other':>6} | {'total':>7}  target")
    for leg in results["overhead"]:
        p = leg["per_object_overhead"]
        charged = leg["l1_charged"]["per_object_overhead"]
        print(f"{leg['body_size']:>7} {leg['objects']:>7} {leg['second_pass']['hits']:>5} | "
              f"{p['l1']:>8.0f} {charged:>10.0f} | {p['replay_memo']:>7.0f} {p['replay_seen']:>5.0f} "
              f"{p['rendered_memo']:>8.0f} {p['route_memo']:>7.0f} {p['other']:>6.0f} | {p['total']:>7.0f}  "
              f"{_verdict(leg['meets_target'])}")
    last = results["overhead"][-1]
    print("memos, bytes per entry held (capacity): " + ", ".join(
        f"{name} {per:.0f} ({last['memo_capacity'][name]:,})" for name, per in last["bytes_per_entry_held"].items()))
    print("\nL1 byte bound (target: L1 real <= 1.05 x budget)")
    print(f"{'mix':>6} {'budget':>9} {'fetched':>10} {'evictions':>9} | {'L1 charged':>10} {'L1 real':>9} "
          f"{'ratio':>6} | {'memos+other':>11} {'ratio all':>9}  target")
    for leg in results["bound"]:
        r, l1 = leg["retained_bytes"], leg["l1_charged"]
        print(f"{leg['mix']:>6} {leg['budget']:>9} {leg['requested']['body_bytes']:>10} {l1['evictions']:>9} | "
              f"{l1['bytes']:>10} {r['l1']:>9} {leg['ratio']:>6.3f} | {r['total'] - r['l1']:>11} "
              f"{leg['ratio_total']:>9.3f}  {_verdict(leg['meets_target'])}")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(parse_size(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not sizes or any(s < 2 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be >= 2 bytes (the demo origin's smallest blob is \"\")")
    return sizes


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive value, got {text!r}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory", description=__doc__.split("\n\n")[0],
        epilog="Starts the demo origin and in-process proxies on loopback; stops them on exit.")
    parser.add_argument("--objects", type=_positive(int), default=defaults.objects,
                        help=f"distinct objects per body size in the overhead legs (default {defaults.objects})")
    parser.add_argument("--sizes", type=_sizes, default=defaults.sizes,
                        help="body sizes of the overhead legs, comma-separated (default 2,2048,51200; "
                             "2 B is the demo origin's smallest blob)")
    parser.add_argument("--cache-size", type=_positive(parse_size), default=defaults.cache_size,
                        help="L1 budget of the bound legs (default 4MB)")
    parser.add_argument("--bound-factor", type=_positive(float), default=defaults.bound_factor,
                        help="budgets' worth of distinct objects fetched in each bound leg (default 4)")
    parser.add_argument("--concurrency", type=_positive(int), default=defaults.concurrency,
                        help=f"requests in flight (default {defaults.concurrency})")
    parser.add_argument("--warmup", type=_positive(int), default=defaults.warmup,
                        help=f"warm-up URLs before each baseline (default {defaults.warmup})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the mixed sizes (default 1)")
    parser.add_argument("--max-seconds", type=_positive(float), default=600.0,
                        help="give up after this long (default 600)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default bench/results/memory-<UTC time>.json)")
    args = parser.parse_args(argv)
    opts = Options(objects=args.objects, sizes=args.sizes, cache_size=args.cache_size,
                   bound_factor=args.bound_factor, concurrency=args.concurrency, warmup=args.warmup, seed=args.seed)
    machine = machine_info()
    started = time.monotonic()
    with procs.terminate_as_interrupt(), contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as logdir:
        origin = procs.start_origin(stack, Path(logdir))
        try:
            results = asyncio.run(asyncio.wait_for(measure(origin.url, opts), args.max_seconds))
        except TimeoutError:
            print(f"gave up after {args.max_seconds:.0f} s (--max-seconds)", file=sys.stderr)
            return 1
    print_table(results)
    document = {
        "kind": "memory",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine,
        "versions": versions(),
        "git": git_commit(),
        "config": opts.to_json(),
        "targets": {"overhead_bytes": OVERHEAD_TARGET, "bound_ratio": BOUND_TARGET},
        **results,
    }
    out = write_json(document, "memory", out=args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
