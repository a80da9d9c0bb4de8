"""HTTP/1.1 connections to an origin: one exchange at a time on an asyncio.Protocol parsed by
llhttp (httptools' C extension), and the per-origin pool of keep-alive connections.

Why not aiohttp's client: per miss it built ClientRequest and ClientResponse objects, CIMultiDict
headers, a StreamReader, timers and tracing hooks, about 40% of the proxy's CPU on a miss (issue
#7). A reverse proxy needs a small part of that: write one request head, parse one response,
hand the body on with flow control, keep the connection for the next request. This module is
that part; the public API and which failure is which (``UpstreamFailure``) are in ``upstream``.

Origins are not trusted for framing (docs/SECURITY.md). What llhttp refuses fails the exchange,
and bytes arriving when no response is expected (after a complete one, or on an idle pooled
connection) make the connection unusable: they would otherwise be read as the response to the
next request sent on it, and stored under that request's URL.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

# The C parser is a hard requirement, as on the client side (protocol.py): no Python fallback.
from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpResponseParser

from edgeproxy.cache.entry import Headers
from edgeproxy.proxy.chunks import ChunkQueue
from edgeproxy.proxy.lazytimer import LazyTimer

READ_BUFFER = 256 * 1024
"""Unread body bytes at which reading from the origin pauses; it resumes below half of this.
A client slower than its origin then holds back the origin's TCP window, not our memory."""

MAX_HEAD = 64 * 1024
"""Bytes a response head (with any interim 1xx heads before it) may take: aiohttp allowed 128
fields of 8 KB; nginx's default is a single 4–8 KB buffer."""

_LARGE_BODY = 16 * 1024
"""Request bodies at least this big go to the transport beside the head, not copied after it."""

_NO_REQUEST_BODY = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods sent without Content-Length when they carry no body (the rest get ``0``, as aiohttp did:
some servers answer a bodiless POST without one with 411)."""


class ExchangeError(Exception):
    """The response could not be read to its end; the subclass says why."""


class ReadTimeout(ExchangeError):
    """The origin sent nothing for ``read_timeout`` seconds."""


class PeerClosed(ExchangeError):
    """The connection closed, was reset or was given up before the response was complete."""


class BadResponse(ExchangeError):
    """llhttp refused the response, or it broke one of our limits."""


class _Unsolicited(Exception):
    """Raised from a parser callback to stop parsing bytes no request asked for."""


@dataclass(frozen=True, slots=True)
class OriginAddress:
    """Where an origin base URL points, and the Host a request gets when the caller gave none."""

    scheme: str
    host: str
    port: int
    host_header: str

    @classmethod
    def parse(cls, url: str) -> OriginAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"origin URL {url!r} is not http(s)://host[:port]")
        default_port = 443 if parts.scheme == "https" else 80
        port = parts.port or default_port
        host = parts.hostname
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        authority = f"[{host}]" if ":" in host else host
        # RFC 9110 §7.2: the port is left out when it is the scheme's default (as yarl did).
        host_header = authority if port == default_port else f"{authority}:{port}"
        return cls(parts.scheme, host, port, host_header)


def encode_request(
    method: str, target: str, headers: Headers, default_host: str, body: bytes | AsyncIterator[bytes] | None
) -> tuple[bytes, int | None, bool]:
    """The request head as wire bytes, the body length the caller declared and whether the body
    is sent chunked.

    Host goes first (RFC 9112 §3.2: a user agent SHOULD generate it first), then the caller's
    fields in order, then the framing: the caller's Content-Length when it gave one, else the
    length of a bytes body, else chunked for a streamed body. Nothing else is added (no
    User-Agent, Accept, Accept-Encoding or Content-Type). Values are latin-1 text holding the
    client's bytes (one char per byte), so encoding as latin-1 relays them byte for byte (RFC 9110
    §5.5: obs-text is opaque).
    """
    host = default_host
    declared: int | None = None
    has_length = False
    lines: list[str] = []
    for name, value in headers:
        if name == "host":
            host = value
            continue
        if name == "content-length":
            has_length = True
            declared = int(value) if value.isdigit() else None
        lines.append(f"{name}: {value}\r\n")
    chunked = False
    if not has_length:
        if isinstance(body, bytes):
            lines.append(f"Content-Length: {len(body)}\r\n")
        elif body is not None:
            chunked = True
            lines.append("Transfer-Encoding: chunked\r\n")
        elif method not in _NO_REQUEST_BODY:
            lines.append("Content-Length: 0\r\n")
    text = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{''.join(lines)}\r\n"
    # A CR or LF inside any part would start a field or a request of the caller's making
    # (request splitting); the server layer never lets one through, this makes sure.
    line_count = len(lines) + 3
    if text.count("\n") != line_count or text.count("\r") != line_count:
        raise ValueError("CR or LF in the request line or a header field")
    try:
        return text.encode("latin-1"), declared, chunked
    except UnicodeEncodeError:
        # A value we composed ourselves (never one read off the wire) with text beyond latin-1.
        return b"".join(_encode_line(line) for line in text.splitlines(keepends=True)), declared, chunked


def _encode_line(line: str) -> bytes:
    try:
        return line.encode("latin-1")
    except UnicodeEncodeError:
        return line.encode("utf-8")


def _response_parser(protocol: OriginConnection) -> HttpResponseParser:
    parser = HttpResponseParser(protocol)
    # aiohttp's leniencies for responses, kept so no origin that worked before breaks: obs-fold
    # (RFC 9112 §5.2; unfolded to spaces) and any octet but NUL, CR and LF in values
    # (NUL is refused in on_headers_complete), bare-LF line ends (§2.2 lets a recipient accept them) and
    # spaces after a chunk size. Conflicting or malformed framing is still refused.
    parser.set_dangerous_leniencies(
        lenient_headers=True, lenient_optional_cr_before_lf=True, lenient_spaces_after_chunk_size=True
    )
    return parser


class Exchange:
    """One request's response as it arrives: the head, then body chunks.

    The connection feeds it until the response is complete and then serves its next request;
    unread chunks stay here with the caller. Only a response given up before its end closes the
    connection (``abandon``).
    """

    __slots__ = (
        "conn", "head_only", "status", "headers", "length", "keep_alive", "until_eof", "head_done",
        "complete", "interim", "head_size", "_queue", "_error",
    )

    def __init__(self, conn: OriginConnection, head_only: bool) -> None:
        self.conn: OriginConnection | None = conn
        """The connection feeding this response; None once the response is complete or failed."""
        self.head_only = head_only
        """A HEAD request: the response has no body whatever its framing fields say (RFC 9110 §9.3.2)."""
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.length: int | None = None
        self.keep_alive = False
        self.until_eof = False
        """The body is delimited by the connection closing (RFC 9112 §6.3 ¶8)."""
        self.head_done = False
        self.complete = False
        self.interim = False
        self.head_size = 0
        self._queue = ChunkQueue()
        self._error: ExchangeError | None = None

    # ------------------------------------------------------------ the reader's side

    async def head(self) -> None:
        """Wait for the final (non-1xx) response head."""
        while not self.head_done:
            if self._error is not None:
                raise self._error
            await self.wait()

    def read(self) -> bytes | None:
        """The next body chunk; ``b""`` once the body is complete and read; None when the next
        chunk has not arrived yet (``await wait()``). Raises the error that cut the body short,
        after the chunks that did arrive."""
        chunk = self._queue.pop()
        if chunk is not None:
            conn = self.conn
            if conn is not None and self._queue.buffered <= READ_BUFFER // 2:
                conn.resume()
            return chunk
        if self._error is not None:
            raise self._error
        return b"" if self.complete else None

    async def wait(self) -> None:
        """Until something changes: a chunk, the end, or an error."""
        await self._queue.wait()

    def abandon(self) -> None:
        """The reader gives up before the end: the connection is closed, never reused half-read."""
        conn = self.conn
        if conn is not None and not self.complete:
            conn.close(PeerClosed("response abandoned before its end"))

    @property
    def buffered(self) -> int:
        return self._queue.buffered

    # ------------------------------------------------------------ the connection's side

    def feed(self, chunk: bytes) -> None:
        self._queue.push(chunk)

    def finish(self) -> None:
        self.complete = True
        self.conn = None
        self._queue.wake()

    def fail(self, error: ExchangeError) -> None:
        if not self.complete and self._error is None:
            self._error = error
            self.conn = None
            self._queue.wake()

    def head_arrived(self) -> None:
        """The reader waiting in ``head`` goes on."""
        self._queue.wake()


class OriginConnection(asyncio.Protocol):
    """One keep-alive connection to an origin, serving one exchange at a time (no pipelining)."""

    __slots__ = (
        "_pool", "_loop", "_transport", "_parser", "_exchange", "_fields", "served", "idle_since", "closed",
        "counted", "_read_timeout", "_read_at", "_timer", "_paused", "_drain", "_sender",
    )

    def __init__(self, pool: OriginPool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self._transport: asyncio.Transport | None = None
        self._parser = _response_parser(self)
        self._exchange: Exchange | None = None
        self._fields: list[tuple[bytes, bytes]] = []
        self.served = 0
        """Exchanges completed on this connection: more than 0 means a request on it is a reuse."""
        self.idle_since = 0.0
        self.closed = False
        self.counted = True
        """Whether this connection still holds one of its pool's slots."""
        self._read_timeout = 0.0
        self._read_at: float | None = None
        """When the exchange times out unless a byte arrives first; None while reading is paused."""
        self._timer = LazyTimer(self._loop, self._on_timer)
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self._sender: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ used by the pool and upstream

    def begin(self, head_only: bool, read_timeout: float) -> Exchange:
        """Start an exchange: its response is expected from now on, with ``read_timeout`` of
        silence allowed between bytes (head or body)."""
        exchange = self._exchange = Exchange(self, head_only)
        self._read_timeout = read_timeout
        self._read_at = at = self._loop.time() + read_timeout
        self._timer.schedule(at)
        return exchange

    def write(self, data: bytes, body: bytes | None = None) -> None:
        transport = self._transport
        assert transport is not None
        if not body:
            transport.write(data)
        elif len(body) < _LARGE_BODY:
            transport.write(data + body)
        else:
            transport.writelines((data, body))

    def send_body(self, body: AsyncIterator[bytes], chunked: bool, length: int | None) -> None:
        """Stream a request body beside the exchange: an origin may answer (413, 401…) before it
        has read the whole body, and that answer is the client's, not a write error. A
        connection whose request was not completely sent is never reused."""
        self._sender = self._loop.create_task(self._send_body(body, chunked, length))

    def usable(self) -> bool:
        return not self.closed and self._exchange is None

    def close(self, error: ExchangeError | None = None) -> None:
        """Close now; an exchange still in flight fails with ``error``. The pool slot is free
        at once (not when the transport reports it closed)."""
        exchange = self._exchange
        self._exchange = None
        if exchange is not None:
            exchange.fail(error or PeerClosed("connection closed before the response was complete"))
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        if self._transport is not None:
            self._transport.close()
        sender = self._sender
        if sender is not None and not sender.done() and sender is not asyncio.current_task():
            sender.cancel()
        self._pool.forget(self)

    def resume(self) -> None:
        if self._paused and not self.closed and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
            if self._exchange is not None:
                self._read_at = at = self._loop.time() + self._read_timeout
                self._timer.schedule(at)

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        exchange = self._exchange
        error = None
        if exchange is not None and exchange.until_eof and exc is None:
            # RFC 9112 §6.3 ¶8: no Content-Length and not chunked: the close ends the body.
            self._exchange = None
            exchange.finish()
        elif exchange is not None:
            reason = f"reset ({exc})" if exc is not None else "closed by the origin"
            where = "mid-body" if exchange.head_done else "before the response head"
            error = PeerClosed(f"connection {reason} {where}")
        self.close(error)
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        drain = self._drain
        self._drain = None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange is None:
            # Idle in the pool, or after a response that was complete: nothing asked for this.
            self.close()
            return
        self._read_at = self._loop.time() + self._read_timeout
        if not exchange.head_done:
            exchange.head_size += len(data)  # at least the head's size: body bytes may follow it
        try:
            self._parser.feed_data(data)
        except HttpParserCallbackError as exc:
            cause = exc.__context__
            error: ExchangeError | None = cause if isinstance(cause, ExchangeError) else None
            if error is None and not isinstance(cause, _Unsolicited):
                error = BadResponse(f"parsing the response failed: {cause!r}")
        except HttpParserUpgrade:
            error = BadResponse("101 Switching Protocols was never asked for")
        except HttpParserError as exc:
            error = BadResponse(str(exc) or "malformed response")
        else:
            if exchange.complete:
                self._finished(exchange)
            elif not exchange.head_done and exchange.head_size > MAX_HEAD:
                self.close(BadResponse(f"response head larger than {MAX_HEAD} bytes"))
            return
        if exchange.complete:
            self.close()  # the response was whole; what followed it was not asked for
        else:
            self.close(error or BadResponse("bytes beyond the response"))

    # ------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        exchange = self._exchange
        if exchange is None or exchange.complete:
            raise _Unsolicited()
        self._fields = []

    def on_header(self, name: bytes, value: bytes) -> None:
        # Decoded in one pass at the end of the head; fields after it (chunked trailers) land in
        # a list nobody reads: they are not relayed (nor were they by aiohttp).
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        exchange = self._exchange
        assert exchange is not None
        parser = self._parser
        status = parser.get_status_code()
        raw, self._fields = self._fields, []
        if status < 200:
            # RFC 9110 §15.2: interim responses (100 Continue, 103 Early Hints) precede the
            # final one; their fields are not the response's.
            exchange.interim = True
            return
        if exchange.head_size > MAX_HEAD and sum(len(name) + len(value) for name, value in raw) > MAX_HEAD:
            raise BadResponse(f"response head larger than {MAX_HEAD} bytes")
        # llhttp strips the whitespace before a value but not after it (RFC 9110 §5.5 OWS).
        fields = [(name.lower().decode("latin-1"), value.rstrip(b" \t").decode("latin-1")) for name, value in raw]
        length: int | None = None
        chunked = False
        for name, value in fields:
            if "\x00" in value:
                # RFC 9110 §5.5: a NUL in a field value makes the message invalid.
                raise BadResponse("NUL in a response header value")
            if name == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise BadResponse(f"Content-Length {value!r}") from None
            elif name == "transfer-encoding":
                chunked = value.rpartition(",")[2].strip().lower() == "chunked"
        exchange.status = status
        exchange.headers = fields
        exchange.length = length
        exchange.keep_alive = parser.should_keep_alive()
        # RFC 9110 §6.4.1: no body after HEAD, 204 or 304 (llhttp knows the latter two).
        exchange.until_eof = not (exchange.head_only or status in (204, 304)) and length is None and not chunked
        exchange.head_done = True
        if exchange.head_only:
            exchange.finish()
        else:
            exchange.head_arrived()

    def on_body(self, chunk: bytes) -> None:
        exchange = self._exchange
        assert exchange is not None
        if exchange.complete:
            raise _Unsolicited()  # a body after the head of a HEAD response
        exchange.feed(chunk)
        if exchange.buffered > READ_BUFFER and not self._paused and self._transport is not None:
            self._paused = True
            self._read_at = None  # the silence is ours, not the origin's
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        exchange = self._exchange
        assert exchange is not None
        if exchange.interim:
            exchange.interim = False
        elif not exchange.complete:
            exchange.finish()

    # ------------------------------------------------------------ internals

    def _finished(self, exchange: Exchange) -> None:
        """The response is complete: serve the next request, unless the connection may not be."""
        self._exchange = None
        self._read_at = None
        self.served += 1
        if self._paused and self._transport is not None:
            self._paused = False  # the unread chunks are the reader's now, not the connection's
            self._transport.resume_reading()
        sender = self._sender
        if sender is not None and sender.done():
            sender = self._sender = None
        if not exchange.keep_alive or sender is not None:
            # Connection: close, HTTP/1.0 without keep-alive, a close-delimited body, or a
            # request the origin answered before reading all of it.
            self.close()
            return
        if exchange.head_only:
            # llhttp was never told the request was HEAD, so it may still expect a body.
            self._parser = _response_parser(self)
        self._pool.release(self)

    async def _send_body(self, body: AsyncIterator[bytes], chunked: bool, length: int | None) -> None:
        sent = 0
        try:
            async for chunk in body:
                transport = self._transport
                if self.closed or transport is None:
                    return
                if not chunk:
                    continue
                sent += len(chunk)
                if chunked:
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                else:
                    transport.write(chunk)
                if self._read_at is not None:
                    self._read_at = self._loop.time() + self._read_timeout  # progress, not silence
                while self._drain is not None and not self.closed:
                    await self._drain
            if self.closed or self._transport is None:
                return
            if chunked:
                self._transport.write(b"0\r\n\r\n")
            elif length is not None and sent != length:
                self.close(PeerClosed(f"request body ended at {sent} of {length} bytes"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client's body failed (it hung up, or broke a limit)
            self.close(PeerClosed(f"request body failed: {exc!r}"))

    def _on_timer(self) -> None:
        if self.closed:
            return
        now = self._loop.time()
        if self._exchange is not None:
            at = self._read_at
            if at is None:
                return  # reading is paused for the reader; resume() re-arms
            if now >= at:
                self.close(ReadTimeout(f"no bytes from the origin for {self._read_timeout:g}s"))
                return
        else:
            # Idle in the pool: the pool never hands out a connection idle longer than its
            # idle_timeout; this closes it too, instead of waiting for the origin to.
            at = self.idle_since + self._pool.idle_timeout
            if now >= at:
                self.close()
                return
        self._timer.schedule(at)


class OriginPool:
    """Keep-alive connections to one origin, at most ``size`` open at once (idle, busy or being
    opened). A request finding none idle and no room waits for one (FIFO)."""

    def __init__(
        self, address: OriginAddress, *, size: int, idle_timeout: float, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.address = address
        self.size = size
        self.idle_timeout = idle_timeout
        self._ssl = ssl_context if address.scheme == "https" else None
        self._idle: list[OriginConnection] = []
        """Most recently used last: reuse takes the warmest, the rest age out."""
        self._open = 0
        self._all: set[OriginConnection] = set()
        self._waiters: deque[asyncio.Future[OriginConnection | None]] = deque()
        """Each gets a connection handed over, or None: a slot to open one with."""
        self._closed = False

    async def acquire(self, deadline: float, *, fresh: bool = False) -> OriginConnection:
        """A connection to send one request on. Waiting for room and connecting share the
        ``deadline`` (TimeoutError past it, as aiohttp's connect timeout did). ``fresh`` skips
        the idle ones, for a retry after a reused connection failed."""
        if self._closed:
            raise ConnectionError("the origin pool is closed")
        if not fresh:
            conn = self._idle_connection()
            if conn is not None:
                return conn
        while True:
            if self._open < self.size:
                self._open += 1
                return await self._connect(deadline)
            handed = await self._wait(deadline)
            if handed is None:
                return await self._connect(deadline)
            if handed.usable():
                if not fresh:
                    return handed  # just released by a complete response, so not stale
                # Closed, but its slot is kept for the connection opened in its place.
                handed.counted = False
                self._all.discard(handed)
                handed.close()
                return await self._connect(deadline)

    def release(self, conn: OriginConnection) -> None:
        """Take back a connection whose response was read to its end."""
        if self._closed:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def forget(self, conn: OriginConnection) -> None:
        """A connection closed: its slot goes to the first waiter, if any."""
        if not conn.counted:
            return
        conn.counted = False
        self._all.discard(conn)
        if self._idle:
            try:
                self._idle.remove(conn)
            except ValueError:
                pass
        self._free_slot()

    def close(self) -> None:
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("the origin pool is closed"))
        self._waiters.clear()
        for conn in list(self._all):
            conn.close(PeerClosed("shutting down"))

    def _free_slot(self) -> None:
        """One connection fewer: the slot goes straight to the first waiter, if any."""
        self._open -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)
                return

    def _idle_connection(self) -> OriginConnection | None:
        oldest = self.loop.time() - self.idle_timeout
        while self._idle:
            conn = self._idle.pop()
            if conn.idle_since >= oldest and conn.usable():
                return conn
            # Idle too long: the origin's keep-alive timeout may be closing it right now, and a
            # request written on it then fails with a reset (see Upstream's idle_timeout).
            conn.close()
        return None

    async def _wait(self, deadline: float) -> OriginConnection | None:
        waiter: asyncio.Future[OriginConnection | None] = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection or a slot just as the wait ended: pass it on.
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self.release(handed)
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    async def _connect(self, deadline: float) -> OriginConnection:
        """Open a connection in a slot already counted for it."""
        conn = OriginConnection(self)
        self._all.add(conn)
        address = self.address
        try:
            async with asyncio.timeout_at(deadline):
                transport, _ = await self.loop.create_connection(
                    lambda: conn,
                    address.host,
                    address.port,
                    ssl=self._ssl,
                    server_hostname=address.host if self._ssl is not None else None,  # SNI
                )
        except BaseException:
            conn.closed = True
            self.forget(conn)
            raise
        if conn.closed:  # the pool was closed while this connection was being opened
            transport.close()
            raise ConnectionError("the origin pool is closed")
        return conn
