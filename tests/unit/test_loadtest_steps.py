"""The step-load schedule."""

from __future__ import annotations

import pytest

from loadtests.steps import users_at


@pytest.mark.parametrize(("elapsed_s", "users"), [(0.0, 2), (9.9, 2), (10.0, 4), (25.0, 6), (30.0, 7), (1000.0, 7)])
def test_users_grow_by_a_step_each_window_up_to_the_cap(elapsed_s: float, users: int) -> None:
    assert users_at(elapsed_s, step_users=2, step_s=10.0, max_users=7) == users


def test_a_schedule_needs_positive_steps() -> None:
    with pytest.raises(ValueError, match="step"):
        users_at(0.0, step_users=0, step_s=10.0, max_users=4)
