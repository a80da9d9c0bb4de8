"""Send raw bytes to an HTTP server and split what comes back into responses.

For request-smuggling and malformed-request tests: aiohttp's client refuses to send conflicting
Content-Length / Transfer-Encoding, bare LF, obs-fold and the like, so these tests write bytes.
Reading stops when the server closes, or when it has been quiet for ``idle`` seconds, so a test
sees every response the server sent (one 400, or a smuggled second response).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

MAX_READ = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    """Names lower-cased, values stripped, in wire order."""
    body: bytes
    """De-chunked when the response was chunked."""

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None


@dataclass(frozen=True, slots=True)
class RawExchange:
    raw: bytes
    """Every byte the server sent."""
    responses: tuple[RawResponse, ...]
    closed: bool
    """The server closed the connection (rather than going quiet)."""

    @property
    def first(self) -> RawResponse:
        if not self.responses:
            raise AssertionError(f"the server sent no complete response; raw bytes: {self.raw[:200]!r}")
        return self.responses[0]


async def exchange(host: str, port: int, data: bytes, *, idle: float = 0.5, timeout: float = 5.0) -> RawExchange:
    """Write ``data`` and collect the answer until the server closes or is quiet for ``idle`` s.

    ``timeout`` bounds the whole exchange; responses to HEAD are not special-cased (send GET).
    """
    reader, writer = await asyncio.open_connection(host, port)
    received = bytearray()
    closed = False
    deadline = time.monotonic() + timeout
    try:
        writer.write(data)
        await writer.drain()
        while len(received) < MAX_READ:
            wait = min(idle, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), wait)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            received += chunk
    except ConnectionError:
        closed = True
    finally:
        writer.close()
    raw = bytes(received)
    return RawExchange(raw, parse_responses(raw), closed)


def parse_responses(raw: bytes) -> tuple[RawResponse, ...]:
    """Split a byte stream into complete HTTP/1.1 responses; an incomplete tail is left out."""
    responses = []
    rest = raw
    while rest:
        parsed = _parse_one(rest)
        if parsed is None:
            break
        response, rest = parsed
        responses.append(response)
    return tuple(responses)


def _parse_one(data: bytes) -> tuple[RawResponse, bytes] | None:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    status_line, *lines = head.decode("latin-1").split("\r\n")
    _version, status, reason = (status_line.split(" ", 2) + ["", ""])[:3]
    if not status.isdigit():
        return None  # not a response we can frame: the caller still has it in ``raw``
    headers = tuple((k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines))
    response = RawResponse(int(status), reason, headers, b"")
    names = {k for k, _ in headers}
    # RFC 9112 §6.3: 1xx, 204 and 304 have no body; chunked wins over Content-Length.
    if response.status < 200 or response.status in (204, 304):
        return response, rest
    if "chunk" in (response.header("transfer-encoding") or ""):
        decoded = _dechunk(rest)
        if decoded is None:
            return None
        body, rest = decoded
    elif "content-length" in names:
        length_text = response.header("content-length") or ""
        if not length_text.isdigit() or len(rest) < int(length_text):
            return None
        length = int(length_text)
        body, rest = rest[:length], rest[length:]
    else:
        body, rest = rest, b""  # RFC 9112 §6.3 rule 8: the body runs to the close
    return RawResponse(response.status, response.reason, headers, body), rest


def _dechunk(data: bytes) -> tuple[bytes, bytes] | None:
    body = bytearray()
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            return None
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            return None
        if size == 0:
            # RFC 9112 §7.1: the last chunk is followed by optional trailer lines and an empty line.
            if data.startswith(b"\r\n"):
                return bytes(body), data[2:]
            end = data.find(b"\r\n\r\n")
            return (bytes(body), data[end + 4 :]) if end >= 0 else None
        if len(data) < size + 2:
            return None
        body += data[:size]
        data = data[size + 2 :]


class KeepAlive:
    """One keep-alive client connection that sends whole chunks and reads one response each
    (framed by Content-Length); ``ask()`` sends ``request`` unless given another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
        self.reader, self.writer, self.request = reader, writer, request

    async def send(self, *chunks: bytes, pause: float = 0.0) -> None:
        for chunk in chunks:
            self.writer.write(chunk)
            await self.writer.drain()
            if pause:
                await asyncio.sleep(pause)

    async def response(self) -> tuple[bytes, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(next(line for line in head.split(b"\r\n") if line.startswith(b"content-length:")).split(b":")[1])
        return head, await self.reader.readexactly(length)

    async def ask(self, request: bytes | None = None) -> bytes:
        await self.send(request or self.request)
        return (await self.response())[1]


@asynccontextmanager
async def keep_alive(port: int, request: bytes = b"") -> AsyncIterator[KeepAlive]:
    """A :class:`KeepAlive` connection to 127.0.0.1:``port``, closed when the block ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield KeepAlive(reader, writer, request)
    finally:
        writer.close()
