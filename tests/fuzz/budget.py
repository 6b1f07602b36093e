"""How many inputs each fuzz target tries, and the count of those it did try (printed at the end of the run).

Profiles, chosen with HYPOTHESIS_PROFILE: `ci` (the default) runs each target's `ci_examples`, derandomized so that
CI sees the same inputs each time; `long` runs LONG_RUN_FACTOR times as many, freshly random, for a local run."""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
LONG_RUN_FACTOR = 10
DEADLINE = timedelta(seconds=5)
"""Per input: a decode or a request that takes longer fails the target (a hang, or a quadratic path)."""

inputs_tried: Counter[str] = Counter()


def fuzz_settings(ci_examples: int) -> settings:
    if PROFILE not in ("ci", "long"):
        raise ValueError(f"HYPOTHESIS_PROFILE must be ci or long, got {PROFILE!r}")
    is_long = PROFILE == "long"
    return settings(
        max_examples=ci_examples * (LONG_RUN_FACTOR if is_long else 1),
        derandomize=not is_long,
        database=None,
        deadline=DEADLINE,
        # One app, server or channel serves every input of a target; the images are large on purpose.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


def tried(target: str) -> None:
    """Count one input of `target`."""
    inputs_tried[target] += 1
