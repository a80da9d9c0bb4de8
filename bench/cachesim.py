"""Hit-ratio lab: replay a key trace through the L1 eviction policy, LRU and Belady's optimum.

The live policies are the proxy's own (``edgeproxy.storage.eviction``), so the lab measures the
code that runs in production. Belady's MIN (evict the object whose next use is farthest away,
and do not admit one that will be used later than everything cached) is optimal for equal-sized
objects; with mixed sizes exact optimality is NP-hard and this greedy form is the usual upper
reference line, not a proven bound.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.workload import object_sizes, scan_mix_keys, zipf_keys

NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class Trace:
    """Requests in order: ``keys[i]`` of ``sizes[i]`` bytes (an object keeps one size)."""

    name: str
    keys: np.ndarray
    sizes: np.ndarray

    @property
    def unique_bytes(self) -> int:
        _, first = np.unique(self.keys, return_index=True)
        return int(self.sizes[first].sum())


@dataclass(frozen=True, slots=True)
class SimResult:
    policy: str
    requests: int
    hits: int
    bytes_requested: int
    bytes_hit: int
    evictions: int

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    @property
    def byte_hit_ratio(self) -> float:
        return self.bytes_hit / self.bytes_requested if self.bytes_requested else 0.0


def synthetic_trace(kind: str, *, objects: int, length: int, alpha: float, seed: int) -> Trace:
    """A ``zipf`` or ``scan-mix`` trace over ``objects`` keys with the workload's object sizes."""
    if kind == "zipf":
        keys = zipf_keys(objects, alpha, length, seed)
    elif kind == "scan-mix":
        keys = scan_mix_keys(objects, alpha, length, seed)
    else:
        raise ValueError(f"unknown synthetic trace {kind!r}: use zipf, scan-mix or a CSV file")
    # Scan keys lie beyond the catalog; they get sizes from the same distribution.
    sizes = object_sizes(int(keys.max()) + 1, seed)
    return Trace(kind, keys, sizes[keys])


def read_csv_trace(path: Path) -> Trace:
    """A trace from a CSV of ``key,size`` rows (an optional header row is skipped)."""
    key_ids: dict[str, int] = {}
    keys: list[int] = []
    sizes: list[int] = []
    with path.open(newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{lineno}: expected 'key,size', got {len(row)} fields")
            try:
                size = int(row[1])
            except ValueError:
                if lineno == 1:
                    continue
                raise ValueError(f"{path}:{lineno}: size {row[1]!r} is not an integer number of bytes") from None
            keys.append(key_ids.setdefault(row[0], len(key_ids)))
            sizes.append(size)
    if not keys:
        raise ValueError(f"{path}: no 'key,size' rows found")
    return Trace(path.name, np.array(keys, dtype=np.int64), np.array(sizes, dtype=np.int64))


def capacity_bytes(trace: Trace, spec: str) -> int:
    """``"1%"`` of the trace's unique bytes, or an absolute size like ``"64MB"`` or ``"4096"``."""
    spec = spec.strip()
    if spec.endswith("%"):
        return max(1, int(trace.unique_bytes * float(spec[:-1]) / 100.0))
    return parse_size(spec)


def parse_size(text: str) -> int:
    """Bytes from ``4096``, ``64KB``, ``256MB`` or ``1GB`` (powers of 1024)."""
    units = {"GB": 1024**3, "MB": 1024**2, "KB": 1024, "B": 1}
    upper = text.strip().upper()
    for suffix, factor in units.items():
        if upper.endswith(suffix):
            return int(float(upper[: -len(suffix)]) * factor)
    return int(upper)


def simulate(policy: str, make_cache: Callable[[int], object], trace: Trace, capacity: int) -> SimResult:
    """Replay ``trace`` through a fresh ``EvictingCache`` of ``capacity`` bytes: a miss inserts."""
    cache = make_cache(capacity)
    get, put = cache.get, cache.set  # type: ignore[attr-defined]
    hits = bytes_hit = 0
    for key, size in zip(trace.keys.tolist(), trace.sizes.tolist(), strict=True):
        if get(key) is not None:
            hits += 1
            bytes_hit += size
        else:
            put(key, size, size)
    return SimResult(policy, len(trace.keys), hits, int(trace.sizes.sum()), bytes_hit,
                     cache.evictions)  # type: ignore[attr-defined]


def next_uses(keys: Sequence[int] | np.ndarray) -> list[int]:
    """For each position, the position of the same key's next request (``NEVER`` if none)."""
    nxt = [int(NEVER)] * len(keys)
    seen: dict[int, int] = {}
    for i in range(len(keys) - 1, -1, -1):
        key = int(keys[i])
        nxt[i] = seen.get(key, int(NEVER))
        seen[key] = i
    return nxt


def belady(trace: Trace, capacity: int) -> SimResult:
    """Belady's MIN with bypass, extended greedily to sizes (see the module docstring)."""
    keys = trace.keys.tolist()
    sizes = trace.sizes.tolist()
    nxt = next_uses(keys)
    cached: dict[int, int] = {}  # key -> size
    due: dict[int, int] = {}  # key -> position of its next use (current heap entry)
    heap: list[tuple[int, int]] = []  # (-next use, key); stale entries skipped lazily
    used = hits = bytes_hit = evictions = 0
    for i, (key, size) in enumerate(zip(keys, sizes, strict=True)):
        if key in cached:
            hits += 1
            bytes_hit += size
        elif size <= capacity and nxt[i] != NEVER:
            while used + size > capacity:
                far_next, victim = heap[0]
                if due.get(victim) != -far_next:
                    heapq.heappop(heap)
                    continue
                if -far_next < nxt[i]:
                    break  # everything cached is needed sooner than this object: bypass it
                heapq.heappop(heap)
                used -= cached.pop(victim)
                del due[victim]
                evictions += 1
            if used + size > capacity:
                continue
            cached[key] = size
            used += size
        else:
            continue
        if nxt[i] == NEVER:
            used -= cached.pop(key)
            due.pop(key, None)
            continue
        due[key] = nxt[i]
        heapq.heappush(heap, (-nxt[i], key))
    return SimResult("belady", len(keys), hits, int(trace.sizes.sum()), bytes_hit, evictions)


def live_policies() -> dict[str, Callable[[int], object]]:
    """The proxy's eviction policies, imported on use so ``bench`` imports without them."""
    from edgeproxy.storage.eviction import LRUCache, S3FIFOCache

    return {"s3-fifo": S3FIFOCache, "lru": LRUCache}


def run_all(trace: Trace, capacity: int) -> list[SimResult]:
    results = [simulate(name, make, trace, capacity) for name, make in live_policies().items()]
    results.append(belady(trace, capacity))
    return results


def format_table(trace: Trace, capacity: int, results: list[SimResult]) -> str:
    lines = [
        (
            f"trace {trace.name}: {len(trace.keys):,} requests, {len(np.unique(trace.keys)):,} objects, "
            f"{trace.unique_bytes / 2**20:.1f} MiB unique; capacity {capacity / 2**20:.2f} MiB"
        ),
        "",
        "| policy | hit ratio | byte hit ratio | evictions |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.policy} | {r.hit_ratio:.2%} | {r.byte_hit_ratio:.2%} | {r.evictions:,} |" for r in results
    ]
    return "\n".join(lines)
