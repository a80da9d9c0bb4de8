"""A byte-level origin that records each request head exactly as it arrived.

aiohttp's server decodes and normalizes the target before a handler sees it; poisoning tests
must compare the proxy's cache key with the bytes the origin really received, so this origin
reads the head off the socket itself.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from tests.support.origin import serve_streams


@dataclass(frozen=True, slots=True)
class RawRequest:
    method: str
    target: str
    """The request-target byte for byte (decoded as latin-1)."""
    head: bytes
    """The whole head, request line to the blank line, as received."""
    body: bytes = b""
    """The body, when framed by Content-Length (what the proxy sends for sized uploads)."""

    def header_lines(self) -> list[bytes]:
        return [line for line in self.head.split(b"\r\n")[1:] if line]

    def content_length(self) -> int:
        for line in self.header_lines():
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return int(value)
        return 0


@dataclass(slots=True)
class RecordingOrigin:
    """Answers every request with one fixed response (then closes) and records the head."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("Cache-Control", "max-age=60"),)
    body: bytes = b"ok"
    seen: list[RawRequest] = field(default_factory=list)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def targets(self) -> list[str]:
        return [request.target for request in self.seen]

    def serving(self) -> AbstractAsyncContextManager[str]:
        return serve_streams(self._answer, self._writers)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            request = RawRequest(method, target, head)
            length = request.content_length()
            body = await asyncio.wait_for(reader.readexactly(length), 5) if length else b""
            self.seen.append(RawRequest(method, target, head, body))
            lines = [f"HTTP/1.1 {self.status} X", *(f"{k}: {v}" for k, v in self.headers),
                     f"Content-Length: {len(self.body)}", "Connection: close", "", ""]
            writer.write("\r\n".join(lines).encode("latin-1") + self.body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


@dataclass(slots=True)
class DesyncOrigin:
    """A keep-alive origin that answers each request with ``genuine <target>``, but after answering
    ``trigger`` sends one more, unsolicited response a moment later on the same connection (what
    a response-splitting bug or a smuggled request in the origin produces)."""

    trigger: str = "/split"
    unsolicited: bytes = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 6\r\n\r\nPOISON"
    requests: int = 0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def serving(self) -> AbstractAsyncContextManager[str]:
        return serve_streams(self._serve, self._writers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                self.requests += 1
                target = head.split(b" ", 2)[1]
                body = b"genuine " + target
                writer.write(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                if target.decode("latin-1") == self.trigger:
                    await asyncio.sleep(0.05)  # after the proxy has put the connection back in its pool
                    writer.write(self.unsolicited)
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
