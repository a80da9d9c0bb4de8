"""Stopping background tasks within a bound, even when a cancellation gets lost on the way.

``task.cancel()`` followed by ``await task`` is not a bounded stop on Python 3.11: there
``asyncio.wait_for`` returns the inner result, and drops the cancellation, when the cancellation
arrives just as the inner operation completes (CPython gh-86296, fixed in 3.12). redis-py wraps
every command it sends in ``wait_for`` (whenever ``socket_timeout`` is set, as on every client
edgeproxy makes), so a task cancelled while it talks to Redis may simply carry on, its
``cancelling()`` count above zero, and a task that loops (a subscription, a periodic flush) then
never ends: ``await task`` waits forever. So a stop cancels again whatever is still running, and
gives up after a deadline instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_INTERVAL = 0.1
"""How long a task gets to end after a cancellation before it is cancelled again."""


async def cancel_and_wait(
    tasks: Iterable[asyncio.Future[Any]], timeout: float, *, what: str = "background task"
) -> set[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait up to ``timeout`` seconds for them to end, cancelling again,
    every ``RECANCEL_INTERVAL``, those that are still running (a cancellation may have been lost).

    Returns the tasks still running at the deadline (logged; left to end on their own).
    Exceptions of the tasks that ended are retrieved, as ``gather(..., return_exceptions=True)``
    would, so none is reported as never retrieved.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    everything = set(tasks)
    pending = {task for task in everything if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_INTERVAL, remaining))
    for task in everything - pending:
        if not task.cancelled():
            task.exception()
    if pending:
        log.warning("%d %s(s) still running %.1fs after being cancelled; no longer waiting for them: %s",
                    len(pending), what, timeout, ", ".join(sorted(map(_name, pending))))
    return pending


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
