"""Settings helpers: the secrets made up in the data folder when none is configured; the segmenter setting."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings, local_secret
from gateway.tritonserver import server_environment
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


def test_the_segmenter_setting_reaches_tritons_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLATE_SEGMENTER", "/models/birefnet-general.onnx")
    monkeypatch.setenv("REPLATE_SEGMENTER_FORMAT", "birefnet")
    settings = Settings()
    env = server_environment(settings.models_dir, (settings.segmenter, settings.segmenter_format))
    assert env["REPLATE_SEGMENTER"] == "/models/birefnet-general.onnx" and env["REPLATE_SEGMENTER_FORMAT"] == "birefnet"
    assert server_environment(settings.models_dir)["REPLATE_SEGMENTER"] == "/models/birefnet-general.onnx"  # inherited
    env = server_environment(settings.models_dir, ("u2net", "u2net"))  # what Settings says wins
    assert (env["REPLATE_SEGMENTER"], env["REPLATE_SEGMENTER_FORMAT"]) == ("u2net", "u2net")
    monkeypatch.setenv("REPLATE_SEGMENTER_FORMAT", "sam")
    with pytest.raises(ValidationError, match="birefnet"):
        Settings()
