"""Purges as bans (as Varnish does): a ban names URLs, prefixes, tags or everything, and applies
to every object stored before it was issued. Bans are checked lazily at lookup, so purge by
prefix or tag needs no index in any storage tier, and one ban covers L1 and L2 across a fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from edgeproxy.cache.entry import CacheEntry


class BanVerdict(Enum):
    NONE = "none"
    HARD = "hard"
    """The object is gone: treat as a miss."""
    SOFT = "soft"
    """The object is stale from now on: it may still serve under stale-if-error and revalidate."""


def normalize_purge_target(target: str) -> str:
    """A purge URL as ``host/path?query`` (host lower-cased), or ``/path?query`` for any host."""
    if target.startswith("/"):
        return target
    parts = urlsplit(target if "://" in target else f"http://{target}")
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.netloc.lower()}{path}{query}"


def _url_matches(entry_url: str, target: str, prefix: bool) -> bool:
    slash = entry_url.find("/")
    if target.startswith("/"):
        entry_url = entry_url[slash:] if slash >= 0 else "/"
    elif slash > 0:
        # Purge targets carry a lower-cased host; entries keep the host as keyed.
        entry_url = entry_url[:slash].lower() + entry_url[slash:]
    return entry_url.startswith(target) if prefix else entry_url == target


@dataclass(frozen=True, slots=True)
class Ban:
    issued_at: float
    urls: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()
    everything: bool = False
    soft: bool = False

    @classmethod
    def create(
        cls,
        issued_at: float,
        *,
        urls: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        tags: Iterable[str] = (),
        everything: bool = False,
        soft: bool = False,
    ) -> Ban:
        return cls(
            issued_at=issued_at,
            # dict.fromkeys: one URL named twice (as sent and as keyed) is matched once.
            urls=tuple(dict.fromkeys(normalize_purge_target(u) for u in urls)),
            prefixes=tuple(dict.fromkeys(normalize_purge_target(p) for p in prefixes)),
            tags=frozenset(tags),
            everything=everything,
            soft=soft,
        )

    def matches(self, entry: CacheEntry) -> bool:
        if entry.stored_at > self.issued_at:
            return False
        if self.everything or (self.tags and not self.tags.isdisjoint(entry.tags)):
            return True
        return any(_url_matches(entry.url, u, prefix=False) for u in self.urls) or any(
            _url_matches(entry.url, p, prefix=True) for p in self.prefixes
        )

    def to_json(self) -> dict[str, object]:
        return {
            "issued_at": self.issued_at,
            "urls": list(self.urls),
            "prefixes": list(self.prefixes),
            "tags": sorted(self.tags),
            "all": self.everything,
            "soft": self.soft,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Ban:
        """Inverse of :meth:`to_json`. Bans arrive from peers over the bus, so a malformed one
        raises TypeError naming the field instead of becoming a ban that matches wrongly."""
        issued_at = data.get("issued_at")
        if isinstance(issued_at, bool) or not isinstance(issued_at, (int, float)):
            raise TypeError(f"ban issued_at must be a number, got {issued_at!r}")
        return cls(
            issued_at=float(issued_at),
            urls=_strings(data, "urls"),
            prefixes=_strings(data, "prefixes"),
            tags=frozenset(_strings(data, "tags")),
            everything=data.get("all", False) is True,
            soft=data.get("soft", False) is True,
        )


def _strings(data: Mapping[str, object], name: str) -> tuple[str, ...]:
    value = data.get(name, ())
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"ban {name} must be a list of strings, got {value!r}")
    return tuple(value)


class BanList:
    """Bans newer than the oldest object that could still be served; older ones are dropped."""

    def __init__(self, max_object_lifetime: float) -> None:
        self._bans: list[Ban] = []
        self._max_lifetime = max_object_lifetime
        self.generation = 0
        """Counts bans added: a verdict taken at one generation holds while it is unchanged."""

    def __len__(self) -> int:
        return len(self._bans)

    def add(self, ban: Ban) -> None:
        self.generation += 1
        self._bans.append(ban)
        self._bans.sort(key=lambda b: b.issued_at)

    def verdict(self, entry: CacheEntry) -> BanVerdict:
        """HARD if any matching ban is hard, else SOFT if a soft one matches, else NONE."""
        if not self._bans or entry.stored_at > self._bans[-1].issued_at:
            return BanVerdict.NONE
        soft = False
        for ban in reversed(self._bans):
            if ban.issued_at < entry.stored_at:
                break
            if ban.matches(entry):
                if not ban.soft:
                    return BanVerdict.HARD
                soft = True
        return BanVerdict.SOFT if soft else BanVerdict.NONE

    def expire(self, now: float) -> None:
        """Forget bans older than any object still stored could be."""
        horizon = now - self._max_lifetime
        self._bans = [b for b in self._bans if b.issued_at >= horizon]
