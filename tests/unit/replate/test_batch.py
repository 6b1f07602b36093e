"""`replate replace` / `replate remove` in-process (no server): inputs, names, variants, the contact sheet, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from replate.batch import collect_images
from replate.cli import main
from replate.errors import InvalidRequest
from replate.imageio import ImageLimits, decode_image, encode_image
from replate.tiles import LABEL_PX
from tests.synthetic import make_studio_shot

SIZE = (64, 48)


def shot(path: Path, seed: int, fmt: str = "png") -> Path:
    rgb, _alpha = make_studio_shot(*SIZE, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image(rgb, fmt))
    return path


def decoded(path: Path):
    return decode_image(path.read_bytes(), ImageLimits())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shot(tmp_path / "in" / "bottle.png", 1)
    shot(tmp_path / "in" / "mug.jpg", 2, "jpeg")
    (tmp_path / "in" / "notes.txt").write_text("not an image, not picked from a folder")
    return tmp_path / "in"


def test_variants_of_every_scene_a_failure_summary_and_a_contact_sheet(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = shot(tmp_path / "whole.png", 4).read_bytes()
    (folder / "broken.png").write_bytes(whole[: len(whole) // 2])
    out, sheet = tmp_path / "out", tmp_path / "sheet.png"
    args = ["replace", str(folder), "--prompt", "warm studio", "--color", "#203040", "--variants", "2", "--seed", "5"]
    code = main([*args, "--out", str(out), "--contact-sheet", str(sheet)])
    printed = capsys.readouterr().out
    assert code == 1, "an image failed"
    names = {f"{stem}-s{scene}-v{variant}.png" for stem in ("bottle", "mug") for scene in (1, 2) for variant in (1, 2)}
    assert {path.name for path in out.iterdir()} == names
    assert all(decoded(out / name).rgb.shape[:2] == SIZE[::-1] for name in names)
    assert decoded(out / "bottle-s2-v1.png").rgb[0, 0].tolist() == [32, 48, 64], "the colour scene"
    assert (out / "bottle-s1-v1.png").read_bytes() != (out / "bottle-s1-v2.png").read_bytes(), "seeds 5 and 6 differ"
    assert "4 of 6 succeeded, 8 file(s) written" in printed and "6/6" in printed
    assert printed.count("failed: " + str(folder / "broken.png")) == 2 and "image_corrupt" in printed
    assert "seed 5" in printed
    inputs, columns = 3, 1 + 2 * 2  # the input, then 2 scenes x 2 variants; 200 x 150 tiles under a header row
    assert decoded(sheet).rgb.shape[:2] == (LABEL_PX + 6 + inputs * 150, columns * 200)

    again = tmp_path / "again"
    assert main(["replace", str(folder / "bottle.png"), "--prompt", "warm studio", "--variants", "2", "--seed", "5",
                 "--out", str(again)]) == 0  # fmt: skip
    assert (again / "bottle-v2.png").read_bytes() == (out / "bottle-s1-v2.png").read_bytes(), "--seed repeats"


def test_remove_writes_cutouts_or_mattes(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["remove", str(folder / "*.png"), str(folder / "mug.jpg"), "--out", str(tmp_path / "cut")]) == 0
    assert decoded(tmp_path / "cut" / "bottle.png").alpha is not None
    assert main(["remove", str(folder), "--channels", "alpha", "--format", "webp", "--out", str(tmp_path / "m")]) == 0
    matte = decode_image((tmp_path / "m" / "mug.webp").read_bytes(), ImageLimits())
    assert matte.rgb.shape[:2] == SIZE[::-1] and "2 of 2 succeeded" in capsys.readouterr().out


def test_inputs_are_files_folders_and_globs_each_once(folder: Path) -> None:
    bottle, mug = folder / "bottle.png", folder / "mug.jpg"
    assert collect_images([str(folder)]) == [bottle, mug]
    assert collect_images([str(mug), str(folder / "*.*"), str(bottle)]) == [mug, bottle]
    with pytest.raises(InvalidRequest, match="no such file or folder"):
        collect_images([str(folder / "missing.png")])
    with pytest.raises(InvalidRequest, match="no images"):
        collect_images([str(folder / "*.txt")])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give a scene"),
        (["--color", "#fff", "--variants", "5"], "--variants must be between 1 and 4"),
        (["--color", "#fff", "--harmonize", "2"], "harmonize must be between 0 and 1"),
        (["--color", "#fff", "--concurrency", "8"], "--concurrency is for --server"),
        (["--color", "#fff", "--server", "http://127.0.0.1:9"], "--server needs an API key"),
    ],
)
def test_mistakes_are_refused_before_any_work(
    folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("REPLATE_API_KEY", raising=False)
    assert main(["replace", str(folder), "--out", str(tmp_path / "out"), *extra]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_two_inputs_that_would_write_one_file_are_refused(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shot(tmp_path / "other" / "mug.png", 3)
    assert main(["remove", str(folder), str(tmp_path / "other"), "--out", str(tmp_path / "out")]) == 1
    assert "would both write" in capsys.readouterr().err
