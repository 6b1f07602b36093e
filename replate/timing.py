"""Stage timings in milliseconds, as the pipelines report them in INFO."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the block's wall time, in ms, to timings[stage] (a stage run several times adds up)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000


class Laps:
    """Times consecutive steps: each `lap(step)` records, in ms, the time since the previous lap (or creation)."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.timings[step] = (now - self._last) * 1000.0
        self._last = now
