"""The L2 data path's Redis channel: multiplexed RESP connections on hiredis's C codec.

Every cache read and write on an L1 miss is a Redis command, so its client-side cost is paid
per request. redis-py's asyncio client spends ~70 µs of CPU per command here (connection pool
checkout, per-command bookkeeping, its parser layers); writing the packed command and matching
the reply off a pipelined connection spends ~20 µs (``python -m bench.l2_client_cost``: 2 KB
GETs, 64 in flight, on the 2-core dev box). :class:`RespChannel` is that: commands from every
coroutine of the process share a few connections, each reply completes its connection's oldest
waiter (Redis answers in order).

It speaks only what the data path sends (GET, SET, UNLINK, EXISTS, EVAL/EVALSHA, pipelines of
those) over plain TCP or a Unix socket, with AUTH and SELECT from the URL. Anything else — TLS,
Redis Cluster, URL options — goes through redis-py (:class:`RedisPyChannel`), as do the admin
paths (SCAN, PING) and the fleet bus. Both raise redis-py's exceptions, so callers handle one
set of errors.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from edgeproxy.storage.redisconn import RedisClient

Arg = str | bytes | int
Command = tuple[Arg, ...]


class Channel(Protocol):
    """Runs Redis commands. Replies are RESP values as hiredis gives them (bytes, int, None,
    lists); an error reply raises ``ResponseError`` (``NoScriptError`` for NOSCRIPT, as redis-py
    has it), a lost connection ``ConnectionError``."""

    async def call(self, *args: Arg) -> Any: ...

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one round trip (not a transaction); raises the first error
        reply after all have run."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a plain (non-TLS, non-cluster) Redis listens, and how to log in."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    """A Unix socket, instead of host and port."""
    username: str | None = None
    password: str | None = None
    db: int = 0


def plain_endpoint(url: str) -> Endpoint | None:
    """``url`` as an :class:`Endpoint` when :class:`RespChannel` can serve it: ``redis://`` or
    ``unix://``, with at most a ``db`` option. None for anything redis-py must handle."""
    parts = urlsplit(url)
    options = parse_qs(parts.query)
    if parts.scheme not in ("redis", "unix") or set(options) - {"db"}:
        return None
    db_text = options["db"][0] if "db" in options else parts.path.strip("/") if parts.scheme == "redis" else ""
    db_text = db_text or "0"
    if not db_text.isdigit():
        return None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if parts.scheme == "unix":
        return Endpoint(path=parts.path, username=username, password=password, db=int(db_text))
    return Endpoint(parts.hostname or "127.0.0.1", parts.port or 6379, username=username, password=password, db=int(db_text))


@dataclass(slots=True)
class _Waiter:
    """A caller waiting for ``left`` more replies, which it gets all at once."""

    future: asyncio.Future[list[Any]]
    left: int
    replies: list[Any] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.transport: asyncio.Transport | None = None
        self.waiters: collections.deque[_Waiter] = collections.deque()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = RedisConnectionError(f"Redis connection lost: {exc!r}" if exc else "Redis closed the connection")
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                self._deliver(reply)
        except (hiredis.ProtocolError, IndexError):  # garbled, or a reply nobody asked for
            self.close()

    def _deliver(self, reply: Any) -> None:
        waiter = self.waiters[0]
        waiter.replies.append(reply)
        waiter.left -= 1
        if not waiter.left:
            self.waiters.popleft()
            if not waiter.future.done():  # a caller that timed out is gone: drop its replies
                waiter.future.set_result(waiter.replies)

    def send(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        assert self.transport is not None
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.waiters.append(_Waiter(future, len(commands)))
        self.transport.write(_pack(commands[0]) if len(commands) == 1 else b"".join(map(_pack, commands)))
        return future

    def close(self) -> None:
        """Close now; waiters fail when the transport reports the loss, and no new command is
        sent here meanwhile (``lost``)."""
        self.lost = True
        if self.transport is not None:
            self.transport.close()


def _typed(error: ResponseError) -> ResponseError:
    """An error reply as redis-py raises it: NOSCRIPT as ``NoScriptError``, which script callers
    catch to send the script whole."""
    code, _, message = str(error).partition(" ")
    return NoScriptError(message) if code == "NOSCRIPT" else error


def _pack(command: Command) -> bytes:
    # hiredis's stub types the argument as a 1-tuple; it takes any length.
    packed: bytes = hiredis.pack_command(cast(Any, command))
    return packed


class RespChannel:
    """A few multiplexed connections, opened as needed and again after one is lost.

    A command goes to the connection with the fewest replies outstanding: one connection while
    callers keep up, up to ``size`` when one is busy, so a slow reply (an 8 MB object on its
    way) holds up only the commands queued behind it, not every cache read of the process.

    A caller cancelled while waiting (its ``asyncio.timeout``) closes its connection, as
    redis-py does: a Redis that stopped answering is not trusted with the next command, and the
    next caller reconnects instead of queueing behind a dead socket.
    """

    def __init__(self, endpoint: Endpoint, *, size: int = 4) -> None:
        self.endpoint = endpoint
        self.size = size
        self._conns: list[_Connection] = []
        self._connecting: asyncio.Task[_Connection] | None = None

    async def call(self, *args: Arg) -> Any:
        return (await self._run((args,)))[0]

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        return await self._run(commands)

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        for conn in self._conns:
            conn.close()
        self._conns = []

    async def _run(self, commands: Sequence[Command]) -> list[Any]:
        conn = await self._least_busy()
        future = conn.send(commands)
        try:
            replies = await future
        except asyncio.CancelledError:
            conn.close()
            raise
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise _typed(reply)
        return replies

    async def _least_busy(self) -> _Connection:
        """The live connection with the fewest replies outstanding; a new one when every live
        one is busy and there is room."""
        if any(conn.lost for conn in self._conns):
            self._conns = [conn for conn in self._conns if not conn.lost]
        idlest = min(self._conns, key=lambda conn: len(conn.waiters), default=None)
        if idlest is not None and (not idlest.waiters or len(self._conns) >= self.size):
            return idlest
        return await self._connect()

    async def _connect(self) -> _Connection:
        """A new connection, opened once for every caller that needs it meanwhile."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            # Retrieved here so a connect whose callers all timed out is not logged as lost.
            self._connecting.add_done_callback(lambda task: task.cancelled() or task.exception())
        # Shielded: one caller's timeout must not abort the connect the others wait on.
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Connection:
        try:
            conn = await self._dial()
            await self._log_in(conn)
        finally:
            self._connecting = None
        self._conns.append(conn)
        return conn

    async def _dial(self) -> _Connection:
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        if ep.path is not None:
            _, conn = await loop.create_unix_connection(_Connection, ep.path)
        else:
            _, conn = await loop.create_connection(_Connection, ep.host, ep.port)
        return conn

    async def _log_in(self, conn: _Connection) -> None:
        """AUTH and SELECT as the URL says, before any caller's command."""
        ep = self.endpoint
        login: list[Command] = []
        if ep.password is not None:
            login.append(("AUTH", ep.username, ep.password) if ep.username else ("AUTH", ep.password))
        if ep.db:
            login.append(("SELECT", ep.db))
        if not login:
            return
        try:
            replies = await conn.send(login)
        except BaseException:
            conn.close()
            raise
        if errors := [r for r in replies if isinstance(r, ResponseError)]:
            conn.close()
            raise RedisConnectionError(f"Redis refused the login from the URL: {errors[0]}")


class RedisPyChannel:
    """A :class:`Channel` over a redis-py client: TLS, Redis Cluster, URL options."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    async def call(self, *args: Arg) -> Any:
        return await self.client.execute_command(*args)

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute()

    async def close(self) -> None:
        """The client belongs to whoever made it."""


def data_channel(url: str, client: RedisClient) -> Channel:
    """The fastest channel that serves ``url``: :class:`RespChannel` for plain Redis, else the
    redis-py ``client`` (made for the same URL)."""
    endpoint = plain_endpoint(url)
    return RespChannel(endpoint) if endpoint is not None else RedisPyChannel(client)
