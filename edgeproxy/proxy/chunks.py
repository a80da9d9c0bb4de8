"""Body chunks handed from a protocol's callbacks to the coroutine that reads them.

Both sides of the proxy need it: the server for request bodies, the origin client for response
bodies. The queue counts what it holds, so its owner can pause and resume reading, and wakes its
one reader on every change (a chunk, the end, an error) — what the change means is the owner's.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ChunkQueue:
    __slots__ = ("_chunks", "buffered", "_waiter")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self.buffered = 0
        """Bytes held, not yet read."""
        self._waiter: asyncio.Future[None] | None = None

    def push(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.buffered += len(chunk)
        self.wake()

    def pop(self) -> bytes | None:
        """The oldest chunk, or None when none is waiting."""
        if not self._chunks:
            return None
        chunk = self._chunks.popleft()
        self.buffered -= len(chunk)
        return chunk

    def wake(self) -> None:
        """Tell the reader something changed."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until the next ``wake``."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None
