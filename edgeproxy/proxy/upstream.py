"""The origin side: one shared aiohttp ClientSession, request re-framing and error mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from enum import Enum

import aiohttp
from yarl import URL

from edgeproxy.cache.entry import Headers
from edgeproxy.policies.model import OriginSettings
from edgeproxy.proxy import hdrs

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
    """A response whose head has arrived; the body is read on demand, exactly once."""

    def __init__(self, status: int, headers: Headers, response: aiohttp.ClientResponse) -> None:
        self.status = status
        self.headers = headers
        self._response = response
        self._body = self._chunks()

    @property
    def content_length(self) -> int | None:
        return self._response.content_length

    async def _chunks(self, size: int = 65536) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except TimeoutError as exc:  # first: aiohttp's ServerTimeoutError is a ClientError too
            raise UpstreamError(UpstreamFailure.TIMEOUT, "read timed out mid-body") from exc
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamError(UpstreamFailure.TRUNCATED, str(exc)) from exc
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamError(UpstreamFailure.RESET, str(exc)) from exc
        finally:
            self._response.release()

    async def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        """Read until the body ends (→ (body, True)) or exceeds ``limit`` (→ (prefix, False));
        after False, ``rest()`` streams what remains. A broken body raises UpstreamError."""
        parts: list[bytes] = []
        total = 0
        async for chunk in self._body:
            parts.append(chunk)
            total += len(chunk)
            if total > limit:
                return b"".join(parts), False
        return b"".join(parts), True

    def rest(self) -> AsyncIterator[bytes]:
        """The unread remainder of the body, as it arrives."""
        return self._body

    def close(self) -> None:
        self._response.close()


class _GuardedConnector(aiohttp.TCPConnector):
    """Never reuse a pooled origin connection that received bytes while idle.

    Such bytes are an unsolicited response (response splitting, or a request smuggled into the
    origin); handing the connection to the next request would make that response its answer,
    stored under the wrong URL. Varnish likewise closes a backend connection that is readable
    while idle. (aiohttp's own pool only checks that the connection is open.)
    """

    async def _get(self, key, traces):  # type: ignore[no-untyped-def]
        conns = self._conns.get(key)
        if conns:
            for idle in [entry for entry in conns if entry[0].should_close]:
                conns.remove(idle)
                idle[0].close()
            if not conns:
                del self._conns[key]
        return await super()._get(key, traces)


def _wire_headers(headers: Headers) -> list[tuple[str, str]]:
    """Field values travel as the client's bytes (RFC 9110 §5.5 obs-text is opaque).

    Values are held as latin-1 text (one char per byte) while aiohttp's client writes str
    headers as UTF-8; re-reading the bytes as UTF-8 makes it write them back unchanged. A value
    that is not UTF-8 cannot be written byte-exact by aiohttp and is dropped (and logged).
    """
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if value.isascii():
            out.append((name, value))
            continue
        try:
            out.append((name, value.encode("latin-1").decode("utf-8")))
        except (UnicodeEncodeError, UnicodeDecodeError):
            log.warning("dropping request field %s: its bytes are not UTF-8 and cannot be relayed exactly", name)
    return out


IDLE_TIMEOUT = 4.0
"""Seconds a pooled origin connection may sit idle and still be reused (see ``Upstream``)."""


class Upstream:
    """Sends re-framed requests to origins over pooled keep-alive connections.

    ``idle_timeout`` bounds how long an idle pooled connection is reused. It must be shorter than
    the origin's own keep-alive timeout: an origin closes an idle connection without telling us
    first, and a request written on it just then fails with a reset. A safe request is retried
    on a fresh connection (see ``send``), but a POST or PUT cannot be (RFC 9110 §9.2.2), so its
    client gets a 502 for nothing. Node's http server (``keepAliveTimeout``) and uvicorn
    (``--timeout-keep-alive``) both close after 5 s by default, hence 4 s, not aiohttp's 15 s.
    """

    def __init__(self, *, pool_size: int = 256, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._pool_size = pool_size
        self._idle_timeout = idle_timeout

    async def start(self) -> None:
        # aiohttp checks keepalive_timeout when it takes a connection from the pool, not only in
        # its periodic cleanup, so no connection idle longer than the bound is ever reused.
        connector = _GuardedConnector(
            limit=self._pool_size,
            limit_per_host=self._pool_size,
            ttl_dns_cache=300,
            keepalive_timeout=self._idle_timeout,
        )
        # auto_decompress=False: pass-through bodies are relayed byte-exact, never inflated.
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type", "Accept"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(
        self,
        origin: OriginSettings,
        method: str,
        target: str,
        headers: Headers,
        body: AsyncIterator[bytes] | bytes | None = None,
    ) -> UpstreamResponse:
        """Open a request to ``origin`` + ``target`` (never URL-joined with client input) and
        return once the response head arrived."""
        assert self._session is not None, "Upstream.start() was not awaited"
        url = URL(origin.url.rstrip("/") + target, encoded=True)
        timeout = aiohttp.ClientTimeout(connect=origin.connect_timeout, sock_read=origin.read_timeout)
        attempts = 2 if method in IDEMPOTENT_RETRY and body is None else 1
        for attempt in range(1, attempts + 1):
            try:
                response = await self._session.request(
                    method,
                    url,
                    headers=_wire_headers(headers),
                    data=body,
                    allow_redirects=False,
                    timeout=timeout,
                    compress=None,
                )
                break
            except TimeoutError as exc:
                raise UpstreamError(UpstreamFailure.TIMEOUT, f"no response from {origin.url} in time") from exc
            except aiohttp.ClientConnectorError as exc:
                raise UpstreamError(UpstreamFailure.CONNECT, f"cannot connect to {origin.url}: {exc.os_error}") from exc
            except (aiohttp.ClientResponseError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # RFC 9110 §9.2.2: a pooled connection the origin closed, or left holding stray
                # bytes from a mis-framed response, fails before any response; a safe request
                # is retried once on a fresh connection.
                if attempt < attempts:
                    continue
                kind = UpstreamFailure.PROTOCOL if isinstance(exc, aiohttp.ClientResponseError) else UpstreamFailure.RESET
                raise UpstreamError(kind, f"{origin.url}: {exc}") from exc
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise UpstreamError(UpstreamFailure.RESET, f"{origin.url}: {exc}") from exc
        response_headers = tuple(
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.raw_headers
        )
        return UpstreamResponse(response.status, hdrs.strip_hop_by_hop(response_headers), response)
