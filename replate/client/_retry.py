"""When to retry a call and how long to wait first: the one policy both clients follow."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from replate.client._models import retry_after_s

Outcome = httpx.Response | httpx.TransportError
"""What one attempt ended with: the server's answer, or a connection that failed (perhaps after the server had
done the work: billable calls carry an Idempotency-Key, so that a retry is answered once and charged once)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on `retry_statuses` (429 rate_limited, 503 overloaded/unavailable) and on connection errors, at
    most `max_retries` times. The wait is the server's Retry-After when it sends one (capped at `max_delay_s`),
    else an exponential backoff with jitter: a random time between half and all of
    min(max_delay_s, initial_delay_s x 2^retry)."""

    max_retries: int = 4
    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    retry_statuses: frozenset[int] = frozenset({429, 503})

    def delay_s(self, retry: int, outcome: Outcome) -> float | None:
        """Seconds to wait before retry number `retry` (0 for the first), or None to stop and report `outcome`."""
        if retry >= self.max_retries:
            return None
        if isinstance(outcome, httpx.Response):
            if outcome.status_code not in self.retry_statuses:
                return None
            asked = retry_after_s(outcome)
            if asked is not None:
                return min(asked, self.max_delay_s)
        return self.backoff_s(retry)

    def backoff_s(self, retry: int) -> float:
        ceiling = min(self.max_delay_s, self.initial_delay_s * 2**retry)
        return random.uniform(ceiling / 2, ceiling)


NO_RETRIES = RetryPolicy(max_retries=0)
