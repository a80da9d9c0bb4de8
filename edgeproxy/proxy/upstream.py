"""The origin side: pooled keep-alive HTTP/1.1 connections (``originconn``), the public API the
edge uses, and which failure is which."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from enum import Enum

from edgeproxy.cache.entry import Headers
from edgeproxy.policies.model import OriginSettings
from edgeproxy.proxy import hdrs
from edgeproxy.proxy.originconn import (
    BadResponse,
    Exchange,
    ExchangeError,
    OriginAddress,
    OriginPool,
    PeerClosed,
    ReadTimeout,
    encode_request,
)

log = logging.getLogger("edgeproxy.upstream")

IDEMPOTENT_RETRY = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamFailure(str, Enum):
    CONNECT = "connect"
    TIMEOUT = "timeout"
    RESET = "reset"
    PROTOCOL = "protocol"
    TRUNCATED = "truncated"


DISCONNECTED = frozenset({UpstreamFailure.CONNECT, UpstreamFailure.TIMEOUT, UpstreamFailure.RESET, UpstreamFailure.PROTOCOL})
"""Failures that leave the cache without any answer from the origin (RFC 9111 §4.2.4
"disconnected"): refused, timed out, closed or reset, or a head that is not HTTP. A body cut
short (TRUNCATED) follows a response the origin did give."""


class UpstreamError(Exception):
    """The origin could not give a complete response. ``status_hint`` is what a client gets
    when nothing stale may be served instead: 504 for timeouts, 502 otherwise."""

    def __init__(self, kind: UpstreamFailure, detail: str) -> None:
        super().__init__(f"origin {kind.value}: {detail}")
        self.kind = kind
        self.status_hint = 504 if kind is UpstreamFailure.TIMEOUT else 502

    @property
    def public_message(self) -> str:
        """What a client may be told: the kind of failure, never the origin's address or the
        client library's exception text (those go to the log)."""
        return "origin timed out" if self.kind is UpstreamFailure.TIMEOUT else f"origin unavailable ({self.kind.value})"

    @property
    def disconnected(self) -> bool:
        return self.kind in DISCONNECTED


class UpstreamResponse:
    """A response whose head has arrived; the body is read on demand, exactly once.

    A response dropped before its end (neither read through nor closed) closes its connection
    when it is collected, so a half-read connection never goes back to the pool.
    """

    __slots__ = ("status", "headers", "_exchange")

    def __init__(self, exchange: Exchange) -> None:
        self.status = exchange.status
        self.headers: Headers = hdrs.strip_hop_by_hop(tuple(exchange.headers))
        self._exchange = exchange

    def __del__(self) -> None:
        try:
            self._exchange.abandon()
        except RuntimeError:
            pass  # collected after its event loop closed: the transport went with the loop

    @property
    def content_length(self) -> int | None:
        return self._exchange.length

    async def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        """Read until the body ends (→ (body, True)) or exceeds ``limit`` (→ (prefix, False));
        after False, ``rest()`` streams what remains. A broken body raises UpstreamError."""
        parts: list[bytes] = []
        total = 0
        try:
            while chunk := await self._next_chunk():
                parts.append(chunk)
                total += len(chunk)
                if total > limit:
                    return b"".join(parts), False
        except ExchangeError as exc:
            raise _body_error(exc) from exc
        return b"".join(parts), True  # one part is returned as it is, not copied

    def rest(self) -> AsyncIterator[bytes]:
        """The unread remainder of the body, as it arrives."""
        return self._chunks()

    async def _next_chunk(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` once it is complete."""
        exchange = self._exchange
        while (chunk := exchange.read()) is None:
            await exchange.wait()
        return chunk

    async def _chunks(self) -> AsyncIterator[bytes]:
        # A generator method: while the stream is relayed it keeps this response alive.
        exchange = self._exchange
        try:
            while chunk := await self._next_chunk():
                yield chunk
        except ExchangeError as exc:
            raise _body_error(exc) from exc
        finally:
            exchange.abandon()  # a no-op once the body is complete

    def close(self) -> None:
        """Done with the response: its connection is closed unless the body was complete."""
        self._exchange.abandon()


def _body_error(exc: ExchangeError) -> UpstreamError:
    if isinstance(exc, ReadTimeout):
        return UpstreamError(UpstreamFailure.TIMEOUT, f"read timed out mid-body: {exc}")
    # RFC 9111 §3.3: a body cut short (closed, reset or mis-framed) is an incomplete response.
    return UpstreamError(UpstreamFailure.TRUNCATED, str(exc))


def _head_error(origin: OriginSettings, exc: ExchangeError) -> UpstreamError:
    if isinstance(exc, ReadTimeout):
        return UpstreamError(UpstreamFailure.TIMEOUT, f"no response from {origin.url} in time: {exc}")
    if isinstance(exc, BadResponse):
        return UpstreamError(UpstreamFailure.PROTOCOL, f"{origin.url}: {exc}")
    return UpstreamError(UpstreamFailure.RESET, f"{origin.url}: {exc}")


IDLE_TIMEOUT = 4.0
"""Seconds a pooled origin connection may sit idle and still be reused (see ``Upstream``)."""


class Upstream:
    """Sends re-framed requests to origins over pooled keep-alive connections.

    ``pool_size`` caps the connections open to each origin; a request finding them all busy waits
    for one, within the origin's connect timeout.

    ``idle_timeout`` bounds how long an idle pooled connection is reused. It must be shorter than
    the origin's own keep-alive timeout: an origin closes an idle connection without telling us
    first, and a request written on it just then fails with a reset. A safe request is retried
    on a fresh connection (see ``send``), but a POST or PUT cannot be (RFC 9110 §9.2.2), so its
    client gets a 502 for nothing. Node's http server (``keepAliveTimeout``) and uvicorn
    (``--timeout-keep-alive``) both close after 5 s by default, hence 4 s, not aiohttp's 15 s.

    Nothing is added to what the caller sends but Host (when it gave none) and the body's
    framing: no User-Agent, Accept or Accept-Encoding, no decompression, redirects or cookies.
    """

    def __init__(
        self, *, pool_size: int = 256, idle_timeout: float = IDLE_TIMEOUT, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._pool_size = pool_size
        self._idle_timeout = idle_timeout
        self._pools: dict[str, OriginPool] = {}
        self._ssl = ssl_context
        """How https origins are verified; the system's trust store by default (as aiohttp did)."""
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
        if pools:
            await asyncio.sleep(0)  # let the transports report themselves closed

    async def send(
        self,
        origin: OriginSettings,
        method: str,
        target: str,
        headers: Headers,
        body: AsyncIterator[bytes] | bytes | None = None,
    ) -> UpstreamResponse:
        """Send a request to ``origin`` for ``target`` (sent as given, never URL-joined with
        client input) and return once the response head arrived."""
        assert self._started, "Upstream.start() was not awaited"
        pool = self._pools.get(origin.url) or self._pool(origin.url)
        head, declared, chunked = encode_request(method, target, headers, pool.address.host_header, body)
        retry = method in IDEMPOTENT_RETRY and body is None
        fresh = False
        while True:
            try:
                conn = await pool.acquire(pool.loop.time() + origin.connect_timeout, fresh=fresh)
            except TimeoutError as exc:  # first: TimeoutError is an OSError too
                raise UpstreamError(UpstreamFailure.TIMEOUT, f"no connection to {origin.url} in time") from exc
            except OSError as exc:
                raise UpstreamError(UpstreamFailure.CONNECT, f"cannot connect to {origin.url}: {exc}") from exc
            reused = conn.served > 0
            exchange = conn.begin(method == "HEAD", origin.read_timeout)
            if isinstance(body, bytes) or body is None:
                conn.write(head, body)
            else:
                conn.write(head)
                conn.send_body(body, chunked, declared)
            try:
                await exchange.head()
            except ExchangeError as exc:
                if retry and reused and isinstance(exc, (PeerClosed, BadResponse)):
                    # RFC 9110 §9.2.2: a pooled connection the origin closed, or left holding
                    # stray bytes from a mis-framed response, fails before any response; a safe
                    # request is retried once, on a connection opened for it.
                    log.debug("retrying %s %s on a fresh connection: %s", method, target, exc)
                    retry, fresh = False, True
                    continue
                raise _head_error(origin, exc) from exc
            except BaseException:
                conn.close()  # cancelled while waiting: the response will never be read
                raise
            return UpstreamResponse(exchange)

    def _pool(self, url: str) -> OriginPool:
        address = OriginAddress.parse(url)
        if address.scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()
        pool = OriginPool(address, size=self._pool_size, idle_timeout=self._idle_timeout, ssl_context=self._ssl)
        self._pools[url] = pool
        return pool
