"""One client connection: HTTP/1.1 parsed by llhttp (httptools' C extension) feeding the Edge.

The parser runs ahead of the handler: requests pipelined on a keep-alive connection are queued
and answered strictly in order by one task per burst. Request bodies reach the handler as async
iterators with flow control. Anything the server refuses itself (limits, smuggling, open-proxy
attempts, timeouts) is answered with a short ``no-store`` error and the connection is closed,
because after a framing doubt nothing later on the connection can be trusted (RFC 9112 §11.2).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from enum import Enum
from typing import cast

# The C parser is a hard requirement: there is deliberately no pure-Python fallback.
from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from edgeproxy.cache.message import RequestHead
from edgeproxy.proxy.chunks import ChunkQueue
from edgeproxy.proxy.lazytimer import LazyTimer
from edgeproxy.proxy.replay import Replay
from edgeproxy.proxy.reply import Incoming, Reply
from edgeproxy.proxy.server import (
    Framing,
    ServerContext,
    declared_length,
    error_head,
    hit_timing,
    render_head,
    server_timing,
)
from edgeproxy.proxy.upstream import UpstreamError

log = logging.getLogger("edgeproxy.server")

# Fields (besides Host) whose values decide framing or connection handling; a request without
# any of them (most GETs) skips those checks.
_WATCHED = frozenset({b"content-length", b"transfer-encoding", b"connection", b"expect"})
# RFC 9110 §7.6.1 lets Connection name any field, but naming these asks the next hop to drop the
# framing or routing of the request: a classic desync trick, so it is refused.
_UNNOMINATABLE = frozenset({"content-length", "transfer-encoding", "host"})
_ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LARGE_BODY = 16 * 1024
"""Bodies at least this big are handed to the transport beside the head, not copied after it."""


class Rejection(Exception):
    """A request the server refuses itself; ``status`` is what the client gets."""

    def __init__(self, status: int, message: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


class _StopParsing(Exception):
    """Raised from a parser callback once the connection has sent its last response."""


class Deadline(Enum):
    """What the read-side timer is waiting for."""

    HEAD = "head"
    BODY = "body"
    IDLE = "idle"


class RequestBody:
    """A request body as the handler reads it. Reading from the client pauses while more than
    the buffer limit waits here, and resumes once the handler has drained it."""

    __slots__ = ("_conn", "_queue", "_done", "_error", "received", "_expects_continue")

    def __init__(self, conn: EdgeProtocol, *, expects_continue: bool = False) -> None:
        self._conn = conn
        self._expects_continue = expects_continue
        """RFC 9110 §10.1.1: the client holds the body until it sees 100 Continue."""
        self._queue = ChunkQueue()
        self._done = False
        self._error: BaseException | None = None
        self.received = 0

    @property
    def complete(self) -> bool:
        """Every byte of the body has arrived (whether or not the handler read it)."""
        return self._done

    @property
    def buffered(self) -> int:
        return self._queue.buffered

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        self._queue.push(chunk)

    def finish(self) -> None:
        self._done = True
        self._queue.wake()

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self._error = error
            self._queue.wake()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._expects_continue:
            # Sent when the handler first asks for the body: a reply that never reads it spares
            # the client the upload (and closes the connection instead).
            self._expects_continue = False
            if not self.received:
                self._conn.send_continue()
        while (chunk := self._queue.pop()) is None:
            if self._error is not None:
                raise self._error
            if self._done:
                raise StopAsyncIteration
            await self._queue.wait()
        self._conn.body_drained(self)
        return chunk


class _Exchange:
    """One request on the connection, from its parsed head until its response is written."""

    __slots__ = ("incoming", "body", "keep_alive", "http10", "head_only", "rejection", "local", "started")

    def __init__(self, incoming: Incoming | None = None, *, keep_alive: bool = False, http10: bool = False) -> None:
        self.incoming = incoming
        self.body: RequestBody | None = incoming.body if incoming is not None else None  # type: ignore[assignment]
        self.keep_alive = keep_alive
        self.http10 = http10
        self.head_only = incoming is not None and incoming.head.method == "HEAD"
        self.rejection: Rejection | None = None
        self.local: Reply | None = None
        """A reply the server gives without asking the handler (``OPTIONS *``)."""
        self.started = False
        """Response bytes have been written: too late for an error response."""


def origin_form(method: str, target: str, host: str) -> str:
    """The origin-form target (RFC 9112 §3.2.1) this server answers, or a Rejection.

    A reverse proxy is no forward proxy: an absolute-form target (§3.2.2) is accepted only when
    it names the Host itself, and is then rewritten to origin-form.
    """
    if "#" in target:
        # §3.2: no form of request-target has a fragment; the origin would never see it.
        raise Rejection(400, "request target has a fragment ('#')")
    if target.startswith("/"):
        if target.startswith("//"):
            # A network-path reference: some URL joiners read it as another host.
            raise Rejection(400, "request target starts with '//'")
        return target
    if target == "*":
        if method != "OPTIONS":
            raise Rejection(400, "the asterisk-form target is only for OPTIONS (RFC 9112 §3.2.4)")
        return target
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise Rejection(400, "request target must be origin-form ('/path')")
    end = len(rest)
    for delimiter in "/?":
        found = rest.find(delimiter)
        if found != -1:
            end = min(end, found)
    authority, remainder = rest[:end], rest[end:]
    if authority.lower() != host.lower():
        raise Rejection(400, "absolute-form target names another host; this is a reverse proxy, not a forward proxy")
    # The rewritten target gets the origin-form checks too ("http://host//other" is refused).
    return origin_form(method, remainder if remainder.startswith("/") else "/" + remainder, host)


def body_length(watched: list[tuple[bytes, bytes]], http10: bool) -> tuple[int | None, bool]:
    """(Content-Length, chunked) of a request, refusing every ambiguous framing (RFC 9112 §6.1,
    §6.3, §11.2). llhttp already rejects CL with TE, duplicate or non-digit CL, obs-fold, bare CR
    and LF and bad chunk sizes; these are the cases it lets through."""
    lengths = [v for k, v in watched if k == b"content-length"]
    codings = [v for k, v in watched if k == b"transfer-encoding"]
    for name, value in watched:
        if name == b"connection":
            tokens = {t.strip().lower() for t in value.decode("latin-1").split(",")}
            if tokens & _UNNOMINATABLE:
                raise Rejection(400, "Connection may not name Content-Length, Transfer-Encoding or Host")
    if codings:
        if http10:
            # §6.1: Transfer-Encoding in an HTTP/1.0 request means the framing is faulty.
            raise Rejection(400, "Transfer-Encoding in an HTTP/1.0 request")
        if len(codings) != 1 or codings[0].strip().lower() != b"chunked":
            raise Rejection(400, "Transfer-Encoding other than exactly 'chunked'")
        return None, True
    if len(lengths) > 1:
        raise Rejection(400, "more than one Content-Length")
    if lengths:
        value = lengths[0].strip()
        if not value.isdigit():
            raise Rejection(400, "Content-Length is not a number")
        return int(value), False
    return None, False


class EdgeProtocol(asyncio.Protocol):
    """An HTTP/1.1 server connection (see the module docstring)."""

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._limits = ctx.limits
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser: HttpRequestParser | None = HttpRequestParser(self)
        self._client = "-"
        self._pipeline: deque[_Exchange] = deque()
        self._task: asyncio.Task[None] | None = None
        self._current: _Exchange | None = None
        """The exchange whose body is being parsed."""
        self._reading_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        # the request head being parsed
        self._in_head = False
        self._seq = 0
        self._url: list[bytes] = []
        self._url_size = 0
        self._fields: list[tuple[str, str]] = []
        self._watched: list[tuple[bytes, bytes]] = []
        self._hosts: list[bytes] = []
        self._head_size = 0
        self._chunk_used = 0
        """Bytes of the chunk being parsed that the callbacks accounted for (approximately)."""
        self._begin_used = 0
        # deadlines: one timer, re-armed lazily (a deadline moving later costs no timer call)
        self._read_deadline: Deadline | None = None
        self._read_at = 0.0
        self._send_at: float | None = None
        self._timer = LazyTimer(self._loop, self._on_timer)
        self._linger: asyncio.TimerHandle | None = None
        self._eof = False
        self._replayable: tuple[_Exchange, Reply] | None = None
        """A hit answered while parsing the current chunk, whose reply the edge let us reuse."""

    # ------------------------------------------------------------ connection events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        if not self._ctx.connections.admit(self):
            transport.close()
            self._parser = None
            return
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if peer else "-"
        # The first request's head must arrive within the header timeout of connecting.
        self._arm_read(Deadline.HEAD, self._limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None and self._parser is None:
            return  # refused at admission
        self._transport = None
        self._parser = None
        self._ctx.connections.discard(self)
        self._timer.cancel()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._current is not None and self._current.body is not None:
            self._current.body.fail(ConnectionResetError("client closed the connection mid-body"))
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_waiter = self._loop.create_future()
        self._send_at = self._loop.time() + self._limits.send_timeout
        self._timer.schedule(self._send_at)

    def resume_writing(self) -> None:
        self._send_at = None
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)
        self._write_waiter = None

    def eof_received(self) -> bool:
        """A client may half-close after its last request and still read the answers."""
        self._eof = True
        if self._current is not None and self._current.body is not None:
            self._current.body.fail(ConnectionResetError("client closed its side mid-body"))
        self._stop_parsing()
        return bool(self._pipeline) and self._linger is None

    def close_when_idle(self) -> None:
        if not self._pipeline and not self._in_head and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            return  # after a rejection or an upgrade request nothing more is parsed
        idle = not self._in_head and self._task is None and self._current is None and self._write_waiter is None
        if idle and not self._ctx.connections.draining:
            replay = self._ctx.replay.get(data, time.time())
            if replay is not None:
                self._replay(replay)
                return
        seq, size_before = self._seq, self._head_size
        self._chunk_used = 0
        self._replayable = None
        try:
            parser.feed_data(data)
        except HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _StopParsing):
                return
            if not isinstance(cause, Rejection):
                log.error("request parsing failed in our own callback", exc_info=cause)
                cause = Rejection(500, "internal error while reading the request")
            self._reject(cause)
            return
        except HttpParserUpgrade:
            # RFC 9110 §7.8: we may ignore Upgrade and answer in HTTP/1.1, but llhttp treats what
            # follows as another protocol, so nothing more is read and the connection closes.
            self._stop_parsing()
            return
        except HttpParserError as exc:
            self._reject(Rejection(400, str(exc) or "malformed request"))
            return
        if self._replayable is not None:
            exchange, reply = self._replayable
            self._replayable = None
            one_request = idle and self._seq == seq + 1 and not self._in_head and self._parser is not None
            if one_request and self._ctx.replay.wants(data):
                # The chunk was exactly this one request: the same bytes get the same reply.
                self._remember(data, exchange, reply)
        if self._in_head:
            # llhttp does not say where in the chunk the head began, and httptools holds a
            # partial field out of sight, so the incomplete head is measured from the chunk.
            if self._seq == seq:
                self._head_size = size_before + len(data)  # the whole chunk is head
            else:
                self._head_size = len(data) - self._begin_used  # from where this head began
            if self._head_size > self._limits.max_head_size:
                self._reject(Rejection(431, f"request head larger than {self._limits.max_head_size} bytes"))
            elif self._read_deadline is not Deadline.HEAD:
                self._arm_read(Deadline.HEAD, self._limits.header_timeout)

    # ------------------------------------------------------------ llhttp callbacks

    def on_message_begin(self) -> None:
        if self._parser is None:
            raise _StopParsing  # pipelined behind a response that closes the connection
        self._in_head = True
        self._seq += 1
        self._url = []
        self._url_size = 0
        self._fields = []
        self._watched = []
        self._hosts = []
        self._head_size = 0
        self._begin_used = self._chunk_used

    def on_url(self, fragment: bytes) -> None:
        self._url.append(fragment)
        self._url_size += len(fragment)
        self._head_size += len(fragment)
        if self._url_size > self._limits.max_line_size:
            raise Rejection(414, f"request target longer than {self._limits.max_line_size} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self._limits
        fields = self._fields
        if len(fields) >= limits.max_headers:
            raise Rejection(431, f"more than {limits.max_headers} header fields")
        size = len(name) + len(value)
        if size > limits.max_field_size:
            raise Rejection(431, f"a header field is longer than {limits.max_field_size} bytes")
        self._head_size += size + 4
        if self._head_size > limits.max_head_size:
            raise Rejection(431, f"request head larger than {limits.max_head_size} bytes")
        lowered = name.lower()
        if lowered == b"host":
            self._hosts.append(value)
        elif lowered in _WATCHED:
            self._watched.append((lowered, value))
        fields.append((lowered.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        if parser is None:
            raise _StopParsing
        self._chunk_used += self._head_size
        version = parser.get_http_version()
        http10 = version == "1.0"
        if version != "1.1" and not http10:
            raise Rejection(505, f"HTTP/{version} is not supported; use HTTP/1.1")
        method = parser.get_method().decode("ascii")
        if method == "CONNECT":
            raise Rejection(405, "CONNECT is not supported: this is a reverse proxy", (("allow", _ALLOW),))
        hosts = self._hosts
        if len(hosts) != 1 or not hosts[0]:
            # RFC 9112 §3.2: exactly one non-empty Host (we route and key on it).
            raise Rejection(400, "a request needs exactly one non-empty Host header")
        host = hosts[0].decode("latin-1")
        url = self._url
        target = origin_form(method, (url[0] if len(url) == 1 else b"".join(url)).decode("latin-1"), host)
        body: RequestBody | None = None
        if self._watched:
            body, keep_alive = self._framing_checks(parser, http10)
        else:
            keep_alive = not http10  # RFC 9112 §9.3: only 1.1 persists without Connection
        incoming = Incoming(
            head=RequestHead(method, host, target, tuple(self._fields)),
            client=self._client,
            scheme="http",
            body=body,
        )
        exchange = _Exchange(incoming, keep_alive=keep_alive, http10=http10)
        if target == "*":
            # RFC 9110 §9.3.7: OPTIONS * asks about the server itself; answered here.
            exchange.local = Reply(200, [("allow", _ALLOW), ("cache-control", "no-store")])
        if body is not None:
            self._current = exchange
            self._arm_read(Deadline.BODY, self._limits.body_timeout)
        else:
            self._read_deadline = None
            if self._task is None and self._write_waiter is None and self._answer_now(exchange):
                return
        self._enqueue(exchange)

    def _framing_checks(self, parser: HttpRequestParser, http10: bool) -> tuple[RequestBody | None, bool]:
        """The body (None when there is none) and keep-alive of a request that carries framing
        or connection fields."""
        watched = self._watched
        length, chunked = body_length(watched, http10)
        has_body = chunked or bool(length)
        upgrade = parser.should_upgrade()
        if upgrade and has_body:
            # llhttp would hand the body to the upgraded protocol; we never switch protocols.
            raise Rejection(501, "Upgrade with a request body is not supported")
        if length is not None and length > self._limits.max_body_size:
            raise Rejection(413, f"request body larger than {self._limits.max_body_size} bytes")
        expects_continue = not http10 and any(
            k == b"expect" and v.strip().lower() == b"100-continue" for k, v in watched
        )
        body = RequestBody(self, expects_continue=expects_continue) if has_body else None
        return body, parser.should_keep_alive() and not upgrade

    def on_body(self, chunk: bytes) -> None:
        exchange = self._current
        assert exchange is not None and exchange.body is not None
        body = exchange.body
        if body.received + len(chunk) > self._limits.max_body_size:
            raise Rejection(413, f"request body larger than {self._limits.max_body_size} bytes")
        body.feed(chunk)
        self._chunk_used += len(chunk)
        if body.buffered > self._limits.body_buffer:
            self._read_deadline = None  # our pause, not the client's silence
            self._pause_reading()
        else:
            self._read_at = self._loop.time() + self._limits.body_timeout

    def on_message_complete(self) -> None:
        exchange = self._current
        if exchange is not None:
            self._current = None
            assert exchange.body is not None
            exchange.body.finish()
            self._read_deadline = None

    # ------------------------------------------------------------ flow control

    def body_drained(self, body: RequestBody) -> None:
        """The handler took a chunk: resume reading once the buffer is low again."""
        if self._reading_paused and body.buffered <= self._limits.body_buffer // 2:
            self._resume_if_room()

    def _resume_if_room(self) -> None:
        """Resume reading paused for flow control once the body buffer and the queue have room."""
        current = self._current
        if (
            self._parser is not None
            and len(self._pipeline) <= self._limits.max_pipelined
            and (current is None or current.body is None or current.body.buffered <= self._limits.body_buffer // 2)
        ):
            self._resume_reading()
            if current is not None:
                self._arm_read(Deadline.BODY, self._limits.body_timeout)

    def send_continue(self) -> None:
        """The interim 100 response (RFC 9110 §15.2.1): the handler is reading the body of the
        request being answered, so nothing else can be on the wire in between."""
        if self._transport is not None and self._linger is None:
            self._transport.write(_CONTINUE)

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    def _stop_parsing(self) -> None:
        self._parser = None
        self._read_deadline = None
        self._pause_reading()

    async def _writable(self) -> None:
        if self._write_waiter is not None:
            await self._write_waiter

    # ------------------------------------------------------------ deadlines

    def _arm_read(self, deadline: Deadline, seconds: float) -> None:
        self._read_deadline = deadline
        self._read_at = self._loop.time() + seconds
        self._timer.schedule(self._read_at)

    def _on_timer(self) -> None:
        if self._transport is None:
            return
        now = self._loop.time()
        if self._send_at is not None and now >= self._send_at:
            log.info("client %s did not read its response for %.1fs; closing", self._client, self._limits.send_timeout)
            self._transport.abort()
            return
        deadline = self._read_deadline
        if deadline is not None and now >= self._read_at:
            self._read_deadline = None
            if deadline is Deadline.IDLE:
                self._transport.close()
            elif deadline is Deadline.HEAD:
                self._reject(Rejection(408, f"request head not received within {self._limits.header_timeout:g}s"))
            else:
                self._reject(Rejection(408, f"no request body bytes for {self._limits.body_timeout:g}s"))
            return
        pending = [at for at in (self._send_at, self._read_at if deadline else None) if at is not None]
        if pending:
            self._timer.schedule(min(pending))

    # ------------------------------------------------------------ answering

    def _enqueue(self, exchange: _Exchange) -> None:
        self._pipeline.append(exchange)
        if len(self._pipeline) > self._limits.max_pipelined:
            self._pause_reading()
        if self._task is None:
            self._task = self._loop.create_task(self._serve())

    def _reject(self, rejection: Rejection) -> None:
        """Refuse the request being parsed; the error is written in its turn, then we close."""
        self._stop_parsing()
        exchange = self._current
        if exchange is not None:
            self._current = None
            exchange.rejection = rejection
            assert exchange.body is not None
            exchange.body.fail(rejection)
            if self._task is None:
                self._task = self._loop.create_task(self._serve())
        else:
            self._in_head = False
            self._enqueue(_Exchange())
            self._pipeline[-1].rejection = rejection

    async def _serve(self) -> None:
        """Answer queued requests in order until the queue is empty or the connection ends."""
        try:
            # A lingering connection has sent its last response (Connection: close, a refusal).
            while self._pipeline and self._transport is not None and self._linger is None:
                exchange = self._pipeline[0]
                await self._answer(exchange)
                self._pipeline.popleft()
                if self._reading_paused:
                    self._resume_if_room()
        except Exception:
            log.exception("answering %s failed; aborting the connection", self._client)
            self.abort()
            return
        finally:
            self._task = None
        if self._transport is None or self._linger is not None:
            return
        if self._eof or (self._ctx.connections.draining and not self._in_head):
            self._close_gracefully()
        elif not self._in_head and self._parser is not None:
            self._arm_read(Deadline.IDLE, self._limits.keepalive_timeout)

    async def _answer(self, exchange: _Exchange) -> None:
        incoming = exchange.incoming
        if exchange.rejection is not None or incoming is None:
            self._write_rejection(exchange)
            return
        started = time.perf_counter()
        reply = exchange.local
        if reply is None:
            route = self._ctx.routes.get(incoming.head.path) if self._ctx.routes else None
            try:
                reply = await (route or self._ctx.handler)(incoming)
            except Exception:
                if exchange.rejection is None:
                    log.exception("handler failed for %s %s", incoming.head.method, incoming.head.target)
                    exchange.rejection = Rejection(500, "internal error")
        if exchange.rejection is not None or reply is None:
            # Set while the handler ran: its body broke a limit or timed out.
            if reply is not None and reply.stream is not None:
                await _discard(reply.stream)
            self._write_rejection(exchange)
            return
        await self._write_reply(exchange, reply, started)
        if self._ctx.on_reply is not None:
            self._ctx.on_reply(incoming, reply, time.perf_counter() - started)

    def _answer_now(self, exchange: _Exchange) -> bool:
        """Answer from the handler's synchronous fast path (a fresh in-memory hit) without a task
        or a loop turn; False when the request must take the asynchronous path."""
        fast_path = self._ctx.fast_path
        incoming = exchange.incoming
        if fast_path is None or incoming is None or exchange.local is not None:
            return False
        if self._ctx.routes and incoming.head.path in self._ctx.routes:
            return False
        started = time.perf_counter()
        try:
            reply = fast_path(incoming)
        except Exception:
            head = incoming.head
            log.exception("fast path failed for %s %s; answering asynchronously", head.method, head.target)
            return False
        if reply is None:
            return False
        if reply.stream is not None:
            exchange.local = reply  # a stream needs the asynchronous writer
            return False
        assert self._transport is not None
        keep_alive = self._send_body_reply(self._transport, exchange, reply, started)
        if self._ctx.on_reply is not None:
            self._ctx.on_reply(incoming, reply, time.perf_counter() - started)
        if reply.reuse is not None and keep_alive and not exchange.http10 and not self._watched:
            self._replayable = (exchange, reply)
        if not keep_alive or self._eof:
            self._close_gracefully()
        elif not self._ctx.connections.draining:
            self._arm_read(Deadline.IDLE, self._limits.keepalive_timeout)
        else:
            self._close_gracefully()
        return True

    def _replay(self, replay: Replay) -> None:
        """Answer request bytes seen a moment ago with the reply written then (``replay.py``)."""
        started = time.perf_counter()
        transport = self._transport
        assert transport is not None
        duration = b"%.2f" % ((time.perf_counter() - started) * 1000)
        _write_message(transport, (replay.before, duration, replay.after), replay.body)
        if self._ctx.on_reply is not None:
            self._ctx.on_reply(Incoming(replay.head, self._client), replay.reply, time.perf_counter() - started)
        self._arm_read(Deadline.IDLE, self._limits.keepalive_timeout)

    def _remember(self, request: bytes, exchange: _Exchange, reply: Reply) -> None:
        """Keep what was just written for ``request`` so that the same bytes can be replayed."""
        assert reply.reuse is not None and exchange.incoming is not None
        now = time.time()
        framing, length = _framing(exchange, reply)
        before, _, after = self._render(reply, framing, length, None, hit_timing(reply.phase) + "\0").partition(b"\0")
        body = reply.body if framing is Framing.LENGTH else b""
        until = min(reply.reuse.until, math.floor(now) + 1)  # and the Date second
        self._ctx.replay.put(
            request, Replay(before, after, body, exchange.incoming.head, reply, until, reply.reuse.current), now
        )

    def _write_rejection(self, exchange: _Exchange) -> None:
        rejection = exchange.rejection
        assert rejection is not None
        transport = self._transport
        if transport is None:
            return
        self._stop_parsing()
        if exchange.started:
            transport.abort()
            return
        if rejection.status >= 500:
            log.warning("answering %d to %s: %s", rejection.status, self._client, rejection.message)
        else:
            log.info("answering %d to %s: %s", rejection.status, self._client, rejection.message)
        transport.write(error_head(rejection.status, rejection.message, self._ctx.clock.value(), rejection.extra))
        self._close_gracefully()

    def _close_gracefully(self) -> None:
        """Send FIN after the response, then read and drop the client's unread input for a
        while: closing with unread input sends a reset that can destroy the response."""
        transport = self._transport
        if transport is None or self._linger is not None:
            return
        self._stop_parsing()
        if self._eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._resume_reading()
        self._linger = self._loop.call_later(self._limits.linger_timeout, transport.close)

    def _reply_head(self, exchange: _Exchange, reply: Reply, started: float) -> tuple[bytes, Framing, int | None, bool]:
        """The serialized head, the body framing and length, and whether the connection stays open."""
        framing, length = _framing(exchange, reply)
        body = exchange.body
        keep_alive = (
            exchange.keep_alive
            and framing is not Framing.CLOSE
            and (body is None or body.complete)  # an unread body would be parsed as a request
            and not self._ctx.connections.draining
        )
        connection = None if keep_alive and not exchange.http10 else ("keep-alive" if keep_alive else "close")
        exchange.started = True
        head = self._render(reply, framing, length, connection, server_timing(reply, started))
        return head, framing, length, keep_alive

    def _render(self, reply: Reply, framing: Framing, length: int | None, connection: str | None, timing: str) -> bytes:
        fields = reply.headers if reply.fields is None else reply.fields
        return render_head(reply.status, fields, framing, length, connection, self._ctx.clock.value(), timing)

    def _send_body_reply(self, transport: asyncio.Transport, exchange: _Exchange, reply: Reply, started: float) -> bool:
        """Write a reply whose body is in memory, in one write when small; returns keep-alive."""
        head, framing, _, keep_alive = self._reply_head(exchange, reply, started)
        _write_message(transport, (head,), reply.body if framing is Framing.LENGTH else b"")
        return keep_alive

    async def _write_reply(self, exchange: _Exchange, reply: Reply, started: float) -> None:
        transport = self._transport
        if transport is None:
            if reply.stream is not None:
                await _discard(reply.stream)
            return
        if reply.stream is None:
            keep_alive = self._send_body_reply(transport, exchange, reply, started)
        else:
            head, framing, length, keep_alive = self._reply_head(exchange, reply, started)
            transport.write(head)
            if framing is Framing.NONE:
                await _discard(reply.stream)
            elif not await self._write_stream(reply.stream, framing, length):
                self._stop_parsing()
                return
        if self._write_waiter is not None:
            await self._writable()
        if not keep_alive:
            self._close_gracefully()

    async def _write_stream(self, stream: AsyncIterator[bytes], framing: Framing, length: int | None) -> bool:
        """Relay a streamed body with our framing; False when the connection had to be aborted."""
        sent = 0
        try:
            async for chunk in stream:
                transport = self._transport
                if transport is None:
                    await _discard(stream)
                    return False
                if not chunk:
                    continue
                sent += len(chunk)
                if framing is Framing.CHUNKED:
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                elif length is not None and sent > length:
                    log.warning("origin body exceeds its Content-Length %d; aborting client connection", length)
                    transport.abort()
                    await _discard(stream)
                    return False
                else:
                    transport.write(chunk)
                if self._write_waiter is not None:
                    await self._writable()
        except UpstreamError as error:
            # The origin body broke mid-stream: the client must see a broken response, never a
            # complete-looking short one, so the connection is aborted without the final chunk.
            log.warning("origin body broke mid-stream; aborting client connection: %s", error)
            self.abort()
            return False
        except Exception:
            log.exception("reply stream failed mid-body; aborting client connection")
            self.abort()
            return False
        if self._transport is None:
            return False
        if framing is Framing.CHUNKED:
            self._transport.write(b"0\r\n\r\n")
        elif length is not None and sent != length:
            log.warning("origin body ended at %d of %d bytes; aborting client connection", sent, length)
            self._transport.abort()
            return False
        return True


def _write_message(transport: asyncio.Transport, head: tuple[bytes, ...], body: bytes) -> None:
    """A response whose body is in memory: one write when small, else the body beside the head
    in one writev (no copy of the body)."""
    if len(body) < _LARGE_BODY:
        transport.write(b"".join((*head, body)))
    else:
        transport.writelines((*head, body))


def _framing(exchange: _Exchange, reply: Reply) -> tuple[Framing, int | None]:
    """How this reply's body is delimited (RFC 9112 §6.3), and its length when known."""
    status = reply.status
    if status < 200 or status == 204:
        return Framing.NONE, None  # RFC 9110 §8.6: no Content-Length in 1xx and 204
    if exchange.head_only or status == 304:
        # RFC 9110 §8.6: HEAD and 304 may carry the length a GET would have had.
        length = declared_length(reply.headers)
        if length is None and reply.stream is None and reply.body:
            length = len(reply.body)
        return Framing.NONE, length
    if reply.stream is None:
        return Framing.LENGTH, len(reply.body)
    length = declared_length(reply.headers)
    if length is not None:
        # The origin's Content-Length, verified while relaying: a mismatch aborts the connection.
        return Framing.LENGTH, length
    if exchange.http10:
        return Framing.CLOSE, None
    return Framing.CHUNKED, None


async def _discard(stream: AsyncIterator[bytes]) -> None:
    """Release a stream we will not relay (its origin connection goes back or is closed)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
