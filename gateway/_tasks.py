"""Work that must end once started, whatever happens to the task that waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
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
