"""The operator commands run in a data folder of the test's own, on each database."""

from __future__ import annotations

from pathlib import Path

import pytest

from replate.cli import main


@pytest.fixture(params=["sqlite", "postgresql"])
def environment(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLATE_DATA_DIR", str(tmp_path))
    if request.param == "postgresql":
        monkeypatch.setenv("REPLATE_DATABASE_URL", request.getfixturevalue("postgres_url"))
    else:
        monkeypatch.delenv("REPLATE_DATABASE_URL", raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out
