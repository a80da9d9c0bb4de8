"""cancel_and_wait: a bounded stop of background tasks, even when a cancellation gets lost."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import pytest

from edgeproxy.tasks import cancel_and_wait


async def test_a_task_that_lost_its_cancellation_is_cancelled_again() -> None:
    lost = asyncio.Event()

    async def loop_losing_one_cancellation() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            lost.set()  # what redis-py can do on Python 3.11 (asyncio.wait_for, CPython gh-86296)
        while True:
            await asyncio.sleep(3600)

    task = asyncio.create_task(loop_losing_one_cancellation())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], 5.0) == set()
    assert lost.is_set() and task.cancelled()


async def test_a_task_ignoring_every_cancellation_is_given_up_on_after_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    released = False

    async def stubborn() -> None:
        while not released:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass

    task = asyncio.create_task(stubborn(), name="stubborn-loop")
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="edgeproxy.tasks"):
        assert await cancel_and_wait([task], 0.3, what="test loop") == {task}
    assert 0.3 <= time.monotonic() - started < 5.0
    assert "stubborn-loop" in caplog.text and "test loop" in caplog.text
    released = True
    task.cancel()
    await task


async def test_ended_tasks_and_their_exceptions_are_collected() -> None:
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))

    async def fails() -> None:
        raise ValueError("boom")

    async def sleeps() -> None:
        await asyncio.sleep(3600)

    failed, sleeping = asyncio.create_task(fails()), asyncio.create_task(sleeps())
    await asyncio.sleep(0)
    assert await cancel_and_wait([failed, sleeping], 1.0) == set()
    assert sleeping.cancelled() and failed.done() and not failed.cancelled()
    del failed, sleeping
    gc.collect()
    assert reported == []  # no "Task exception was never retrieved"


async def test_nothing_to_wait_for() -> None:
    assert await cancel_and_wait([], 1.0) == set()
