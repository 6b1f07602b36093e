"""The fuzz suite prints how many inputs each target tried (see tests/fuzz/budget.py for the profiles)."""

from __future__ import annotations

import pytest

from tests.fuzz.budget import PROFILE, inputs_tried


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not inputs_tried:
        return
    terminalreporter.section(f"fuzz inputs tried (HYPOTHESIS_PROFILE={PROFILE})")
    for target, count in sorted(inputs_tried.items()):
        terminalreporter.write_line(f"{count:>8}  {target}")
