"""Settings helpers: the secrets made up in the data folder when none is configured."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from gateway.settings import local_secret
from replate.errors import ReplateError


def test_processes_starting_together_agree_on_one_private_secret(tmp_path: Path) -> None:
    path = tmp_path / "data" / "url-signing.key"
    start = threading.Barrier(16)
    secrets: list[bytes] = []

    def read() -> None:
        start.wait()
        secrets.append(local_secret("", path))

    threads = [threading.Thread(target=read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(secrets) == 16 and len(set(secrets)) == 1 and len(secrets[0]) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == ["url-signing.key"]  # no file of a loser left behind


def test_an_empty_secret_file_is_refused_never_used(tmp_path: Path) -> None:
    path = tmp_path / "api-key.secret"
    path.write_text("\n")
    with pytest.raises(ReplateError, match="is empty"):  # an empty HMAC key signs URLs anyone can forge
        local_secret("", path)
    assert local_secret("configured", path) == b"configured"
