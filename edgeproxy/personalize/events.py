"""Impression and click events, and the sinks they are written to (Redis Stream or JSONL file).

Events are plain JSON objects with a ``type`` of ``impression`` or ``click``; an impression
carries the feature rows it was scored with, so training needs no feature store.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio import Redis

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Impression:
    """A personalized list as served: who, when, which model, which items in which order."""

    at: float
    impression_id: str
    user_id: str
    model: str
    items: tuple[str, ...]
    """Item ids in served order (the top of the list only)."""
    features: tuple[tuple[float | None, ...], ...]
    """One feature row per item, in ``items`` order; NaN written as null."""
    feature_names: tuple[str, ...]

    def to_event(self) -> Event:
        return {"type": "impression", **asdict(self)}


@dataclass(frozen=True, slots=True)
class Click:
    at: float
    user_id: str
    item_id: str
    impression_id: str | None = None

    def to_event(self) -> Event:
        return {"type": "click", **asdict(self)}


def json_row(values: Sequence[float]) -> tuple[float | None, ...]:
    """A feature row with NaN as None, because JSON has no NaN."""
    return tuple(None if math.isnan(v) else float(v) for v in values)


class EventSink(Protocol):
    async def write(self, events: Sequence[Event]) -> None: ...

    async def read_all(self) -> list[Event]:
        """Every stored event in write order (training reads the whole log)."""
        ...


class JsonlSink:
    """One JSON object per line in a local file: the learning loop without Redis."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    async def write(self, events: Sequence[Event]) -> None:
        if events:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in events)

    async def read_all(self) -> list[Event]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


class RedisStreamSink:
    """A capped Redis Stream (``XADD … MAXLEN ~``), each entry one field ``e`` holding the JSON."""

    def __init__(self, redis: Redis, stream: str = "edgeproxy:events", max_len: int = 1_000_000) -> None:
        self.redis = redis
        self.stream = stream
        self.max_len = max_len

    async def write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in events:
                pipe.xadd(self.stream, {"e": json.dumps(e, separators=(",", ":"))}, maxlen=self.max_len, approximate=True)
            await pipe.execute()

    async def read_all(self, batch: int = 10_000) -> list[Event]:
        events: list[Event] = []
        start = "-"
        while True:
            chunk = await self.redis.xrange(self.stream, min=start, count=batch)
            events.extend(json.loads(fields[b"e"]) for _, fields in chunk)
            if len(chunk) < batch:
                return events
            start = "(" + chunk[-1][0].decode()


class EventBuffer:
    """A bounded in-memory queue between the (sync) ranker and the (async) sink.

    When the sink falls behind the oldest events are dropped and counted: logging must never
    slow down or fail a response.
    """

    def __init__(self, sink: EventSink, max_events: int = 10_000) -> None:
        self.sink = sink
        self._queue: deque[Event] = deque(maxlen=max_events)
        self.dropped = 0

    def add(self, event: Event) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(event)

    async def flush(self) -> int:
        """Write everything queued; returns how many events were written."""
        events = list(self._queue)
        self._queue.clear()
        await self.sink.write(events)
        return len(events)
