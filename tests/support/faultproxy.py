"""A fault-injecting TCP proxy for tests: put it between the proxy under test and an origin or Redis.

Faults switch at runtime and apply to connections already open (a pooled Redis or upstream
connection is exactly what a fault test wants to hurt). Response-side faults (truncate, reset) count
bytes flowing from the target back to the client, from the moment the fault was set.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import struct
from dataclasses import dataclass, field

CHUNK = 64 * 1024


class Fault(enum.Enum):
    PASS = "pass"
    """Forward both ways untouched."""
    REFUSE = "refuse"
    """Stop listening (new connections get ECONNREFUSED) and reset the open ones."""
    RESET = "reset"
    """Forward ``after_bytes`` response bytes, then abort both sides with a TCP RST."""
    TRUNCATE = "truncate"
    """Forward ``after_bytes`` response bytes, then close both sides cleanly (FIN)."""
    DELAY = "delay"
    """Wait ``delay`` seconds before forwarding each chunk, in both directions."""
    BLACKHOLE = "blackhole"
    """Accept and hold: nothing is forwarded until the fault changes (held data then flows)."""


@dataclass(frozen=True, slots=True)
class FaultMode:
    fault: Fault = Fault.PASS
    after_bytes: int = 0
    delay: float = 0.0


@dataclass(slots=True)
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    generation: int = -1
    response_bytes: int = 0
    """Bytes sent to the client since the fault of ``generation`` took effect."""

    def cut(self, *, reset: bool) -> None:
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()


@dataclass(eq=False, slots=True)
class FaultProxy:
    """``async with FaultProxy("127.0.0.1", port) as fp:`` then connect to ``fp.port``.

    Bounded: at most ``max_connections`` links at once (more are closed on accept), and every link
    and task ends when the block exits.
    """

    target_host: str
    target_port: int
    max_connections: int = 256
    port: int = 0
    """Port to listen on (0: any free one); the bound port once started."""
    accepted: int = field(default=0, init=False)
    """Connections accepted so far (a test can assert the client reconnected)."""
    _mode: FaultMode = field(default_factory=FaultMode, init=False)
    _generation: int = field(default=0, init=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _server: asyncio.Server | None = field(default=None, init=False)
    _links: dict[asyncio.Task[None], _Link] = field(default_factory=dict, init=False)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self) -> FaultMode:
        return self._mode

    async def __aenter__(self) -> FaultProxy:
        await self._listen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def set(self, fault: Fault, *, after_bytes: int = 0, delay: float = 0.0) -> None:
        """Switch the fault; open links see it at their next chunk."""
        if after_bytes < 0 or delay < 0:
            raise ValueError(f"after_bytes and delay must be >= 0 (got {after_bytes}, {delay})")
        self._mode = FaultMode(fault, after_bytes, delay)
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if fault is Fault.REFUSE:
            self._stop_listening()
            for link in self._links.values():
                link.cut(reset=True)
        elif self._server is None:
            await self._listen()

    async def close(self) -> None:
        """Stop listening, reset every open link and wait for its task to end.

        Links end by having their sockets reset rather than by cancellation: asyncio reports a
        cancelled connection task as an unhandled error.
        """
        await self.set(Fault.REFUSE)
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _listen(self) -> None:
        # The port is kept across REFUSE so the client under test reconnects to the same address.
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if len(self._links) >= self.max_connections:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        link = _Link(client=writer)
        self._links[task] = link
        try:
            upstream_reader, link.upstream = await asyncio.open_connection(self.target_host, self.target_port)
            await asyncio.gather(
                self._pump(reader, link.upstream, link, response=False),
                self._pump(upstream_reader, writer, link, response=True),
            )
        except (ConnectionError, OSError):
            pass  # the peer went away or a fault cut the link: both are the point of this proxy
        finally:
            link.cut(reset=False)
            del self._links[task]

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link, *, response: bool
    ) -> None:
        while chunk := await source.read(CHUNK):
            mode = await self._mode_allowing_traffic()
            if mode.fault is Fault.DELAY:
                await asyncio.sleep(mode.delay)
            if response and mode.fault in (Fault.TRUNCATE, Fault.RESET):
                if link.generation != self._generation:
                    link.generation, link.response_bytes = self._generation, 0
                room = mode.after_bytes - link.response_bytes
                if len(chunk) >= room:
                    sink.write(chunk[:room])
                    await sink.drain()
                    link.cut(reset=mode.fault is Fault.RESET)
                    return
                link.response_bytes += len(chunk)
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()  # pass the half-close on: the other direction may still be talking

    async def _mode_allowing_traffic(self) -> FaultMode:
        """The current mode, after waiting out a blackhole."""
        while self._mode.fault is Fault.BLACKHOLE:
            await self._changed.wait()
        return self._mode
