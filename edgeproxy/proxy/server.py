"""What the HTTP/1.1 server is configured with, and the bytes of what it writes.

The connection itself (parsing, pipelining, timeouts) is ``edgeproxy.proxy.protocol``; this
module holds what every connection of a worker shares: limits, the handler and routes, the
connection set (cap and graceful drain), the cached ``Date`` and the response-head serializer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from typing import Protocol

from edgeproxy.cache.httpdate import format_http_date
from edgeproxy.cache.phases import CachePhase
from edgeproxy.proxy.replay import ReplayCache
from edgeproxy.proxy.reply import Incoming, Reply

log = logging.getLogger("edgeproxy.server")

Handler = Callable[[Incoming], Awaitable[Reply]]
"""The proxy itself: ``Edge.handle``."""

FastPath = Callable[[Incoming], Reply | None]
"""Answers what it can without suspending (a fresh in-memory hit), else None; the server calls it
inline while parsing, sparing the hit a task and a loop turn. Replies with a ``stream`` are
written asynchronously."""

Route = Callable[[Incoming], Awaitable[Reply]]
"""An exact path the edge answers itself (e.g. ``/_edge/feedback``), before any proxying."""

ReplyHook = Callable[[Incoming, Reply, float], None]
"""Called once per request after the reply is written: metrics and access log."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Per-worker limits against oversized and hostile clients (defaults in line with nginx and
    Varnish). Sizes are bytes, timeouts seconds."""

    max_line_size: int = 8192
    """Longest request target; longer → 414."""
    max_field_size: int = 8192
    """Longest header field (name + value); longer → 431."""
    max_head_size: int = 65536
    """Largest request head (request line and all fields); larger → 431. Across reads a head
    is measured to within one field of its size."""
    max_headers: int = 100
    """Most header fields in one request; more → 431."""
    max_body_size: int = 16 * 1024 * 1024
    """Largest request body, by Content-Length up front or counted while chunked; larger → 413."""
    header_timeout: float = 10.0
    """A request head must arrive complete within this (slowloris) → 408 and close."""
    body_timeout: float = 30.0
    """Longest silence while a request body is expected → 408 (or abort) and close."""
    keepalive_timeout: float = 75.0
    """An idle keep-alive connection is closed after this."""
    send_timeout: float = 30.0
    """A client that does not drain our write buffer for this long is cut off."""
    linger_timeout: float = 2.0
    """After an error response, how long unread client input is still read and dropped so that
    closing does not send a reset that destroys the response in flight (nginx lingering_close)."""
    max_connections: int = 10_000
    """Open client connections per worker; new ones beyond it are closed at once."""
    body_buffer: int = 256 * 1024
    """Request-body bytes buffered ahead of the handler before reading pauses."""
    max_pipelined: int = 8
    """Parsed requests queued ahead of the one being answered before reading pauses. Browsers do
    not pipeline; the bound is about memory: queued heads cost up to max_pipelined × max_head_size
    per connection (512 KiB at the defaults)."""


class Connection(Protocol):
    def close_when_idle(self) -> None:
        """Close now if no request is in flight, else after the current response."""

    def abort(self) -> None:
        """Drop the connection without a response."""


class ConnectionSet:
    """The open client connections of one worker: enforces the cap, and drains on stop."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: set[Connection] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self.draining = False

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, conn: Connection) -> bool:
        """Register a new connection; False when it must be closed (cap reached or draining)."""
        if self.draining or len(self._open) >= self._limit:
            return False
        self._open.add(conn)
        self._empty.clear()
        return True

    def discard(self, conn: Connection) -> None:
        self._open.discard(conn)
        if not self._open:
            self._empty.set()

    async def drain(self, timeout: float) -> None:
        """Close idle connections now, let requests in flight finish for up to ``timeout``
        seconds, then abort whatever is left."""
        self.draining = True
        for conn in list(self._open):
            conn.close_when_idle()
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            log.warning("drain timed out after %.1fs; aborting %d connection(s)", timeout, len(self._open))
            for conn in list(self._open):
                conn.abort()


class DateClock:
    """The ``Date`` field value (RFC 9110 §6.6.1), formatted at most once per second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def value(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = format_http_date(now)
        return self._value


@dataclass(frozen=True, slots=True)
class ServerContext:
    """Everything a connection needs from its worker."""

    handler: Handler
    fast_path: FastPath | None = None
    limits: ServerLimits = field(default_factory=ServerLimits)
    routes: Mapping[str, Route] = field(default_factory=dict)
    on_reply: ReplyHook | None = None
    connections: ConnectionSet = field(default_factory=lambda: ConnectionSet(ServerLimits().max_connections))
    clock: DateClock = field(default_factory=DateClock)
    replay: ReplayCache = field(default_factory=ReplayCache)


# ---------------------------------------------------------------- response heads

class Framing(Enum):
    """How the end of a response body is delimited (RFC 9112 §6)."""

    NONE = "none"
    """No body follows: HEAD, 1xx, 204, 304 (any Content-Length is informational)."""
    LENGTH = "length"
    CHUNKED = "chunked"
    CLOSE = "close"
    """HTTP/1.0 client and a body of unknown length: the body ends when we close."""


_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}

# Framing and connection management are ours; the reply's values for these are never copied.
_OWN_FIELDS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


def status_line(status: int) -> str:
    return _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Status {status}\r\n"


def declared_length(headers: Iterable[tuple[str, str]]) -> int | None:
    """The Content-Length a reply carries, when it is a valid one."""
    for name, value in headers:
        if name == "content-length":
            value = value.strip()
            return int(value) if value.isdigit() else None
    return None


def render_fields(headers: Iterable[tuple[str, str]]) -> str:
    """A reply's header block (``name: value`` lines) minus the fields the server owns."""
    return "".join([f"{name}: {value}\r\n" for name, value in headers if name not in _OWN_FIELDS])


def render_head(
    status: int,
    headers: Iterable[tuple[str, str]] | str,
    framing: Framing,
    length: int | None,
    connection: str | None,
    date: str,
    timing: str | None = None,
) -> bytes:
    """The status line and header block: the reply's fields (or their block, already rendered
    by ``render_fields``), then Date (when absent), Server-Timing, our framing and Connection."""
    block = headers if isinstance(headers, str) else render_fields(headers)
    parts = [status_line(status), block]
    if not (block.startswith("date: ") or "\r\ndate: " in block):
        parts.append(f"date: {date}\r\n")
    if timing is not None:
        parts.append(f"server-timing: {timing}\r\n")
    if framing is Framing.LENGTH or (framing is Framing.NONE and length is not None):
        parts.append(f"content-length: {length}\r\n")
    elif framing is Framing.CHUNKED:
        parts.append("transfer-encoding: chunked\r\n")
    if connection is not None:
        parts.append(f"connection: {connection}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


_CACHE_DESC = {phase: f'cache;desc="{phase.value}"' for phase in CachePhase}


def hit_timing(phase: CachePhase) -> str:
    """The Server-Timing of a reply with neither origin time nor other timings, up to the
    edge duration."""
    return f"{_CACHE_DESC[phase]}, edge;dur="


def server_timing(reply: Reply, started: float) -> str:
    """Server-Timing metrics: what the cache did, and time spent at the origin."""
    if reply.origin_time is None and not reply.timings:  # a hit: the common case, formatted once
        return f"{hit_timing(reply.phase)}{(time.perf_counter() - started) * 1000:.2f}"
    parts = [_CACHE_DESC[reply.phase]]
    if reply.origin_time is not None:
        parts.append(f"origin;dur={reply.origin_time * 1000:.2f}")
    for name, seconds in reply.timings.items():
        parts.append(f"{name};dur={seconds * 1000:.3f}")
    parts.append(f"edge;dur={(time.perf_counter() - started) * 1000:.2f}")
    return ", ".join(parts)


def error_head(status: int, message: str, date: str, extra: Iterable[tuple[str, str]] = ()) -> bytes:
    """A response the server generates itself (RFC 9112 §2.2: reject, never guess): short text,
    never stored, and the connection is closed after it."""
    body = f"{status} {HTTPStatus(status).phrase}: {message}\n".encode("latin-1", "replace")
    headers = [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store"), *extra]
    return render_head(status, headers, Framing.LENGTH, len(body), "close", date) + body
