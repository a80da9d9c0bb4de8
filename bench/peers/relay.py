"""The floor of a Python miss: a keep-alive HTTP/1.1 relay that caches nothing.

It runs on edgeproxy's own stack (uvloop, httptools' C parsers, one pooled origin connection per
in-flight request, SO_REUSEPORT workers) and does only what any proxy must: parse the request,
forward it, parse the answer, send it on. On the ``miss`` scenario its throughput is what a
Python proxy reaches before it decides or stores anything, so ``edgeproxy/relay`` says what
edgeproxy's caching costs on top of Python itself. A benchmark reference, not a product: no
limits, no request bodies, no hardening.

    python -m bench.peers.relay --listen 127.0.0.1:8081 --origin-port 8000 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from typing import cast

import httptools
import uvloop

LOOPBACK = "127.0.0.1"
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"te",
                        b"trailer", b"upgrade", b"proxy-connection"})
CACHE_STATUS = b"Cache-Status: relay; fwd=miss\r\n"
BAD_GATEWAY = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n" + CACHE_STATUS + b"\r\n")


class OriginConnection(asyncio.Protocol):
    """One keep-alive connection to the origin, carrying one exchange at a time."""

    def __init__(self, pool: list[OriginConnection]) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[bytes] | None = None
        self.head: list[bytes] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("origin closed the connection"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            if self.answer is not None and not self.answer.done():
                self.answer.set_exception(ConnectionError(f"origin sent bad HTTP: {error}"))
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.head = []
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP_BY_HOP:
            self.head.append(name + b": " + value + b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        status = self.parser.get_status_code()
        message = b"".join((b"HTTP/1.1 %d X\r\n" % status, *self.head, CACHE_STATUS,
                            b"Content-Length: %d\r\n\r\n" % len(body), body))
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(message)


class Relay:
    """A worker's origin pool and its one job: a request's bytes in, the answer's bytes out."""

    def __init__(self, origin_port: int) -> None:
        self.origin_port = origin_port
        self.pool: list[OriginConnection] = []

    async def exchange(self, request: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        try:
            if self.pool:
                conn = self.pool.pop()
            else:
                _, conn = await loop.create_connection(lambda: OriginConnection(self.pool), LOOPBACK, self.origin_port)
            assert conn.transport is not None
            conn.answer = loop.create_future()
            conn.transport.write(request)
            message = await conn.answer
        except OSError:  # refused, reset, closed mid-answer
            return BAD_GATEWAY
        conn.answer = None
        if not conn.transport.is_closing():
            self.pool.append(conn)
        return message


class ClientConnection(asyncio.Protocol):
    """A client's keep-alive connection; answers go out in request order (pipelining included)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.head: list[bytes] = []
        self.previous: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.head = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP_BY_HOP:
            self.head.append(name + b": " + value + b"\r\n")

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        request = b"".join((method, b" ", self.url, b" HTTP/1.1\r\n", *self.head, b"\r\n"))
        self.previous = asyncio.ensure_future(self.answer(request, self.previous))

    async def answer(self, request: bytes, previous: asyncio.Task[None] | None) -> None:
        message = await self.relay.exchange(request)
        if previous is not None:
            await previous
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(message)


async def serve(sock: socket.socket, origin_port: int) -> None:
    relay = Relay(origin_port)
    server = await asyncio.get_running_loop().create_server(lambda: ClientConnection(relay), sock=sock)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port to serve on")
    parser.add_argument("--origin-port", type=int, required=True, help="the origin's port on 127.0.0.1")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the listening socket")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(1024)
    for _ in range(args.workers - 1):
        if os.fork() == 0:
            break
    uvloop.run(serve(sock, args.origin_port))


if __name__ == "__main__":
    main()
