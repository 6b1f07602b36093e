"""The step-load schedule, apart from Locust so that it can be tested (and read by the report) without gevent."""

from __future__ import annotations


def users_at(elapsed_s: float, *, step_users: int, step_s: float, max_users: int) -> int:
    """Users wanted `elapsed_s` into the test: `step_users` more at the start of every `step_s` window, capped."""
    if step_users < 1 or step_s <= 0 or max_users < 1:
        raise ValueError("step_users and max_users must be >= 1 and step_s > 0")
    return min(max_users, step_users * (1 + int(elapsed_s // step_s)))
