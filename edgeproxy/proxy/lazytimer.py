"""One event-loop timer for a deadline that mostly moves later.

Read timeouts move on every byte received. Re-arming a loop timer each time would cost a timer
call per chunk; instead the timer stays where it is when the deadline moves later, fires at the
earlier time, and its owner checks the real deadline then and schedules the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LazyTimer:
    __slots__ = ("_loop", "_callback", "_handle", "_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    def schedule(self, at: float) -> None:
        """Make sure the callback runs no later than ``at`` (loop time)."""
        if self._handle is not None:
            if self._at <= at:
                return  # it fires first and the owner re-arms for the later deadline
            self._handle.cancel()
        self._handle = self._loop.call_at(at, self._fire)
        self._at = at

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._callback()
