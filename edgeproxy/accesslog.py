"""One structured JSON line per request, written off the request path.

The request path only samples and appends a frozen record to a bounded deque; a background task
formats and writes batches (the write itself in a thread, so a slow disk or a full stdout pipe
never stalls the event loop). When the writer falls behind, new records are dropped and counted
rather than growing memory or slowing requests.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

STDOUT = "-"
"""``path_or_stream`` value that selects standard output."""


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """What one request did; times in milliseconds, ``time`` as Unix seconds."""

    time: float
    method: str
    host: str
    path: str
    status: int
    phase: str
    """Cache phase (hit, miss, stale, pass, …)."""
    client: str
    bytes: int = 0
    key_hash: str | None = None
    ttl: float | None = None
    """Remaining freshness of the served object, seconds."""
    origin_ms: float | None = None
    rank_ms: float | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    """Free-form fields (policy name, model version, request id …), written under ``extra``."""

    def to_json(self) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds"),
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "status": self.status,
            "phase": self.phase,
            "key": self.key_hash,
            "ttl": self.ttl,
            "origin_ms": self.origin_ms,
            "rank_ms": self.rank_ms,
            "bytes": self.bytes,
            "client": self.client,
        }
        if self.extras:
            line["extra"] = dict(self.extras)
        return json.dumps(line, separators=(",", ":"), default=str)


class AccessLog:
    """Sampled, batched, bounded access log to a file path or a text stream (``"-"``: stdout).

    Lifecycle: ``start()`` (or run ``run()`` as your own task), ``log()`` per request, ``close()``.
    """

    def __init__(
        self,
        path_or_stream: str | Path | TextIO,
        sample: float = 1.0,
        *,
        max_pending: int = 10_000,
        flush_interval: float = 0.2,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"access log sample rate must be within [0, 1], got {sample}")
        self.sample = sample
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.written = 0
        self.dropped = 0
        """Records lost because the writer was ``max_pending`` behind."""
        self.sampled_out = 0
        self._rng = rng
        self._pending: deque[AccessRecord] = deque()
        self._target = path_or_stream
        self._stream: TextIO | None = None
        self._owns_stream = False
        self._task: asyncio.Task[None] | None = None

    def log(self, record: AccessRecord) -> None:
        """Queue ``record`` if sampled in. Server errors are always kept: they are what one greps for."""
        if record.status < 500 and self.sample < 1.0 and self._rng() >= self.sample:
            self.sampled_out += 1
            return
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self._pending.append(record)

    def start(self) -> None:
        """Start the background writer on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="accesslog-writer")

    async def run(self) -> None:
        """Write pending records every ``flush_interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def flush(self) -> None:
        """Format and write everything pending now."""
        if not self._pending:
            return
        batch = [self._pending.popleft() for _ in range(len(self._pending))]
        text = "".join(record.to_json() + "\n" for record in batch)
        stream = self._open()
        await asyncio.to_thread(_write, stream, text)
        self.written += len(batch)

    async def close(self) -> None:
        """Stop the writer, write what is pending, and close the file if we opened it."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()
        if self._owns_stream and self._stream is not None:
            self._stream.close()
        self._stream = None

    def _open(self) -> TextIO:
        if self._stream is None:
            if isinstance(self._target, (str, Path)):
                if str(self._target) == STDOUT:
                    self._stream = sys.stdout
                else:
                    self._stream = open(self._target, "a", encoding="utf-8")
                    self._owns_stream = True
            else:
                self._stream = self._target
        return self._stream


def _write(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()
