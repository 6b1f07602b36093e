import asyncio

import anyio
import pytest

from gateway._tasks import run_or_undo, run_to_end


async def slow_work(log: list[str]) -> str:
    await asyncio.sleep(0.05)
    log.append("done")
    return "result"


async def test_the_result_of_work_left_alone() -> None:
    assert await run_to_end(slow_work([])) == "result"


async def test_a_failure_of_the_work_is_raised() -> None:
    async def failing() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await run_to_end(failing())


async def test_a_plain_cancellation_waits_for_the_work_and_is_then_raised() -> None:
    log: list[str] = []
    work = asyncio.ensure_future(slow_work(log))
    waiter = asyncio.create_task(run_to_end(work))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.sleep(0.01)
    waiter.cancel()  # twice: still waits
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert log == ["done"] and work.result() == "result"


async def test_an_anyio_cancel_scope_waits_for_the_work() -> None:
    log: list[str] = []
    with anyio.move_on_after(0.01) as scope:
        await run_to_end(slow_work(log))
    assert scope.cancelled_caught and log == ["done"]


async def test_work_done_under_a_cancellation_is_undone_and_the_cancellation_goes_on() -> None:
    undone: list[str] = []

    async def undo(result: str) -> None:
        await asyncio.sleep(0.01)
        undone.append(result)

    waiter = asyncio.create_task(run_or_undo(slow_work([]), undo))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert undone == ["result"]
    assert await run_or_undo(slow_work([]), undo) == "result" and undone == ["result"], "left alone: nothing undone"
