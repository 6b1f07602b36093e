"""Work that must end once started, whatever happens to the task that waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_to_end(work: Coroutine[Any, Any, T] | asyncio.Future[T]) -> T:
    """The result of `work`, run in a task of its own and waited for to its end even when the caller is cancelled
    meanwhile (a plain `task.cancel()` as much as an anyio cancel scope); such a cancellation is raised once `work`
    has ended, and the caller that must undo what `work` did reads the outcome from the future it passed."""
    task = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait((task,))  # unlike awaiting the task, a cancellation here leaves the task alone
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled
    return task.result()


async def run_or_undo(work: Coroutine[Any, Any, T], undo: Callable[[T], Coroutine[Any, Any, object]]) -> T:
    """`run_to_end(work)`, for work whose effect outlives the caller (a committed hold, a claimed key): when the
    caller was cancelled meanwhile and the work succeeded, `undo(result)` runs to its end before the cancellation
    goes on, since nobody is left to use the result."""
    task = asyncio.ensure_future(work)
    try:
        return await run_to_end(task)
    except asyncio.CancelledError:
        if not task.cancelled() and task.exception() is None:
            await run_to_end(undo(task.result()))
        raise
