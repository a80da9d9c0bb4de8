"""The fleet bus of one machine without Redis: workers of one supervisor relay purges and
reloads to each other through pipes, so ``--workers N`` obeys a purge sent to any of them.

Worker side: :class:`LocalBus` (the same ``on``/``publish`` shape as ``FleetLink``).
Supervisor side: :class:`Relay`, a thread forwarding each worker's messages to the others.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection, wait
from typing import Any, cast

log = logging.getLogger("edgeproxy.localbus")

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]


class LocalBus:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._handlers: dict[str, Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._conn.fileno(), self._receive)

    def _receive(self) -> None:
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            assert self._loop is not None
            self._loop.remove_reader(self._conn.fileno())
            return
        handler = self._handlers.get(kind)
        if handler is None:
            log.warning("ignoring local bus message of unknown kind %r", kind)
            return
        result = handler(payload)
        if result is not None:
            asyncio.ensure_future(result)

    async def publish(self, kind: str, payload: dict[str, Any]) -> int:
        """Hand the message to the supervisor, which relays it to every other worker."""
        self._conn.send((kind, payload))
        return 0

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._conn.fileno())
        self._conn.close()


class Relay:
    """Forwards every message a worker publishes to all other workers."""

    def __init__(self) -> None:
        self._conns: dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgeproxy-relay", daemon=True)

    def attach(self, slot: int, conn: Connection) -> None:
        with self._lock:
            old = self._conns.pop(slot, None)
            if old is not None:
                old.close()
            self._conns[slot] = conn

    def _detach(self, conn: Connection) -> None:
        """A worker died: stop listening to its pipe until its replacement is attached."""
        with self._lock:
            for slot, known in list(self._conns.items()):
                if known is conn:
                    del self._conns[slot]
        conn.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                conns = dict(self._conns)
            # wait() returns some of the objects it was given, here Connections; its stub is not
            # generic and says Connection | socket | int.
            for ready in cast("list[Connection]", wait(list(conns.values()), timeout=0.2)):
                try:
                    message = ready.recv()
                except (EOFError, OSError):
                    self._detach(ready)
                    continue
                with self._lock:
                    # The current set, not the snapshot: a worker attached meanwhile gets it too.
                    others = [c for c in self._conns.values() if c is not ready]
                for other in others:
                    try:
                        other.send(message)
                    except (BrokenPipeError, OSError):
                        pass
