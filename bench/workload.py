"""The workload model: which URLs a benchmark asks for, in what mix, as which user.

Every stream is a pure function of ``(seed, worker)``, so two runs of one scenario send the same
requests in the same order and A/B rounds compare like with like.

The model, stated once:

* **Popularity** follows Zipf: the object of rank ``r`` (1-based) out of ``n`` is requested with
  probability ``r**-alpha / H(n, alpha)``. Web and CDN traces fit ``alpha`` between 0.6 and 1.0
  (Breslau et al., "Web Caching and Zipf-like Distributions", 1999); the default is 0.9.
* **Object sizes** are heavy-tailed: a lognormal with median 4 KiB, clipped to 256 B .. 256 KiB,
  drawn once per object so an object keeps its size for the whole run (and in ``cachesim``).
* **Users** (personalized runs) are Zipf too (a few heavy users, a long tail), identified by the
  ``uid`` cookie the demo ranker reads.
* **Scans** (``scan-mix`` traces) interleave bursts of one-time keys with the Zipf stream, the
  pattern that flushes an LRU cache and that a scan-resistant policy (S3-FIFO) should survive.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import assert_never

import numpy as np

from edgeproxy.demo.catalog import CATEGORIES

SIZE_MEDIAN = 4096
SIZE_SIGMA = 1.2
SIZE_MIN = 256
SIZE_MAX = 256 * 1024
BATCH = 4096


def zipf_cdf(n: int, alpha: float) -> np.ndarray:
    """Cumulative probabilities of ranks 1..n under Zipf(alpha); precomputed once per stream."""
    if n < 1:
        raise ValueError(f"a Zipf catalog needs at least one object, got n={n}")
    if alpha < 0:
        raise ValueError(f"Zipf alpha must be >= 0, got {alpha}")
    weights = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return cdf


def zipf_ranks(cdf: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` ranks (0-based) drawn by inverting the CDF: vectorized, so a batch costs ~µs."""
    ranks = np.searchsorted(cdf, rng.random(count), side="right")
    return np.minimum(ranks, len(cdf) - 1)


def object_sizes(n: int, seed: int) -> np.ndarray:
    """A fixed, heavy-tailed size in bytes for each of ``n`` objects (see the module docstring)."""
    rng = np.random.default_rng([seed, 0x5173])
    sizes = rng.lognormal(np.log(SIZE_MEDIAN), SIZE_SIGMA, n)
    return np.clip(sizes, SIZE_MIN, SIZE_MAX).astype(np.int64)


def zipf_keys(n: int, alpha: float, length: int, seed: int) -> np.ndarray:
    """A trace of ``length`` object ranks (0-based) drawn from Zipf(alpha) over ``n`` objects."""
    return zipf_ranks(zipf_cdf(n, alpha), length, np.random.default_rng(seed))


def scan_mix_keys(
    n: int, alpha: float, length: int, seed: int, *, scan_every: int = 5000, scan_length: int = 1000
) -> np.ndarray:
    """A Zipf trace with a burst of ``scan_length`` never-repeated keys after every ``scan_every``
    Zipf requests. Scan keys are numbered from ``n`` upwards so they never collide with Zipf keys."""
    if scan_every < 1 or scan_length < 0:
        raise ValueError("scan_every must be >= 1 and scan_length >= 0")
    base = zipf_keys(n, alpha, length, seed)
    out = np.empty(length, dtype=np.int64)
    pos = taken = 0
    next_scan_key = n
    while pos < length:
        chunk = base[taken : taken + min(scan_every, length - pos)]
        out[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
        taken += len(chunk)
        burst = min(scan_length, length - pos)
        out[pos : pos + burst] = np.arange(next_scan_key, next_scan_key + burst)
        pos += burst
        next_scan_key += burst
    return out


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a stream: a path (with query) and the extra headers it carries."""

    path: str
    headers: tuple[tuple[str, str], ...] = ()


class Kind(enum.Enum):
    """Which request generator a workload uses."""

    FIXED = "fixed"
    """A small set of blob URLs, fetched once before measuring: pure hits."""
    UNIQUE = "unique"
    """Every URL new: pure misses."""
    ZIPF = "zipf"
    """A catalog of blob URLs with Zipf popularity and mixed sizes."""
    PERSONALIZED = "personalized"
    """The demo item lists, each request from a Zipf-popular user."""


@dataclass(frozen=True, slots=True)
class Workload:
    """What a scenario asks for: ``kind`` picks the generator, the rest parameterize it."""

    kind: Kind
    blob_size: int = 2048
    distinct: int = 16
    catalog: int = 100_000
    alpha: float = 0.9
    users: int = 10_000
    list_limit: int = 50
    request_ids: bool = False
    """Every request carries its own ``X-Request-Id``, as traffic from many clients carries
    different bytes: no request repeats another's bytes, so none is answered by replay."""

    def warmup_paths(self) -> list[str]:
        """URLs to fetch once before measuring, so a hit scenario measures hits only."""
        if self.kind is Kind.FIXED:
            return [blob_path(self.blob_size, s) for s in range(self.distinct)]
        return []

    def stream(self, seed: int, worker: int) -> Iterator[Request]:
        """An endless, deterministic request stream for one load-generator worker."""
        rng = np.random.default_rng([seed, worker])
        match self.kind:
            case Kind.FIXED:
                return self._fixed(rng)
            case Kind.UNIQUE:
                return self._unique(seed, worker)
            case Kind.ZIPF:
                return self._zipf(rng, seed)
            case Kind.PERSONALIZED:
                return self._personalized(rng)
            case unknown:
                assert_never(unknown)

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind.value, "blob_size": self.blob_size, "distinct": self.distinct,
                "catalog": self.catalog, "alpha": self.alpha, "users": self.users, "list_limit": self.list_limit,
                "request_ids": self.request_ids}

    def _fixed(self, rng: np.random.Generator) -> Iterator[Request]:
        paths = self.warmup_paths()
        sent = 0
        while True:
            for i in rng.integers(0, len(paths), BATCH):
                sent += 1
                yield Request(paths[i], (("X-Request-Id", f"{rng.integers(1 << 62):x}-{sent}"),) if self.request_ids else ())

    def _unique(self, seed: int, worker: int) -> Iterator[Request]:
        base = unique_base(seed, worker)
        for n in range(UNIQUE_PER_WORKER):
            yield Request(blob_path(self.blob_size, base + n))
        raise RuntimeError(f"a worker ran out of unique URLs after {UNIQUE_PER_WORKER:,} requests")

    def _zipf(self, rng: np.random.Generator, seed: int) -> Iterator[Request]:
        cdf = zipf_cdf(self.catalog, self.alpha)
        sizes = object_sizes(self.catalog, seed)
        while True:
            for rank in zipf_ranks(cdf, BATCH, rng):
                yield Request(blob_path(int(sizes[rank]), int(rank)))

    def _personalized(self, rng: np.random.Generator) -> Iterator[Request]:
        user_cdf = zipf_cdf(self.users, self.alpha)
        while True:
            users = zipf_ranks(user_cdf, BATCH, rng)
            categories = rng.integers(0, len(CATEGORIES), BATCH)
            for user, cat in zip(users, categories, strict=True):
                yield Request(
                    f"/api/items?category={CATEGORIES[cat]}&limit={self.list_limit}",
                    (("Cookie", f"uid=u{user}"),),
                )


UNIQUE_PER_WORKER = 1_000_000
UNIQUE_SEEDS = 20


def unique_base(seed: int, worker: int) -> int:
    """First blob seed of a worker's never-repeating range. The origin takes seeds below 2**31, so
    ranges are 1M per worker, 100M per run seed (mod 20): distinct runs do not hit each other."""
    if not 0 <= worker < 100:
        raise ValueError(f"unique URLs support workers 0..99, got {worker}")
    return (seed % UNIQUE_SEEDS) * 100 * UNIQUE_PER_WORKER + worker * UNIQUE_PER_WORKER


def blob_path(size: int, seed: int | str) -> str:
    """The demo origin's benchmark blob: a JSON body of about ``size`` bytes."""
    return f"/api/blob?size={size}&seed={seed}"
