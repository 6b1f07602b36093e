"""Latency of the pixel library on a synthetic studio shot; prints p50/p95, asserts nothing.

Run from the repository root:  python -m benchmarks.bench_pixels [--megapixels 0.25,1.05,4,16] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from replate.compose import compose, cutout
from replate.errors import ReplateError
from replate.harmonize import Placement, place_subject
from replate.imageio import ImageLimits, decode_image, encode_image
from replate.matting import Matte, create_engine, estimate_matte
from replate.models import DEFAULT_MODELS_DIR
from replate.scene import SceneSpec, make_scene
from tests.synthetic import make_studio_shot

ASPECT = 1250 / 840


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", default="0.25,1.05,4,16", help="comma-separated sizes")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [float(size) for size in args.megapixels.split(",")]
    columns = {size: dict(_stage_p50s(size, args.repeat)) for size in sizes}
    header = "".join(f"{f'{size:g} MP p50 ms':>16}" for size in sizes)
    print(f"{args.repeat} runs per step after a warm-up; synthetic studio shot, {ASPECT:.2f}:1")
    print(f"{'step':<24}{header}")
    for step in columns[sizes[0]]:
        print(f"{step:<24}" + "".join(f"{columns[size][step]:>16.1f}" for size in sizes))


def _stage_p50s(megapixels: float, repeat: int) -> list[tuple[str, float]]:
    """(step, p50 ms) of every stage at one size."""
    height = round(math.sqrt(megapixels * 1e6 / ASPECT))
    width = round(height * ASPECT)
    rgb, _alpha = make_studio_shot(width, height, seed=0)
    jpeg, png = encode_image(rgb, "jpeg"), encode_image(rgb, "png")
    matte = estimate_matte(rgb)
    scene = make_scene(SceneSpec(prompt="warm marble studio"), width, height).rgb
    reference = make_studio_shot(1600, 1200, seed=1)[0]
    cut = cutout(rgb, matte)
    limits = ImageLimits(max_megapixels=max(25.0, 2 * megapixels), max_bytes=1 << 30)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("decode jpeg", lambda: decode_image(jpeg, limits)),
        ("decode png", lambda: decode_image(png, limits)),
        ("matting studio", lambda: estimate_matte(rgb)),
        *_auto_matting_case(rgb),
        ("scene color", lambda: make_scene(SceneSpec(color="#e8e4dc"), width, height)),
        ("scene reference", lambda: make_scene(SceneSpec(reference=reference), width, height)),
        ("scene studio", lambda: make_scene(SceneSpec(prompt="warm marble studio", seed=3), width, height)),
        ("compose", lambda: compose(rgb, matte, scene)),
        *_placement_cases(rgb, matte, scene),
        ("cutout", lambda: cutout(rgb, matte)),
        ("encode png (rgb)", lambda: encode_image(rgb, "png")),
        ("encode png (rgba)", lambda: encode_image(cut, "png")),
        ("encode jpeg", lambda: encode_image(rgb, "jpeg")),
        ("encode webp (rgba)", lambda: encode_image(cut, "webp")),
    ]
    return [(name, _percentiles(run, repeat)[0]) for name, run in cases]


def _placement_cases(rgb: np.ndarray, matte: Matte, scene: np.ndarray) -> list[tuple[str, Callable[[], object]]]:
    """place_subject (compose included) on a cut-out (no shadow of its own), next to the plain compose row: what a
    synthesised shadow and harmonisation add to it."""

    def place(harmonize: float, shadow: str) -> Callable[[], object]:
        placement = Placement(harmonize=harmonize, shadow=shadow, preserve_shadow=False)
        return lambda: place_subject(rgb, matte, scene, placement, "studio")

    return [
        ("place: contact, h 0", place(0.0, "contact")),
        ("place: contact, h 1", place(1.0, "contact")),
        ("place: cast, h 1", place(1.0, "cast")),
    ]


def _auto_matting_case(rgb: np.ndarray) -> list[tuple[str, Callable[[], object]]]:
    """The default engine (segmenter + studio or refinement) when its weights are installed."""
    try:
        engine = create_engine("auto", models_dir=DEFAULT_MODELS_DIR)
    except ReplateError:
        return []
    return [("matting auto (u2netp)", lambda: engine.estimate(rgb))]


def _percentiles(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    run()  # warm-up: first-call costs (imports, allocations) are not steady-state latency
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    p50, p95 = np.percentile(samples, [50, 95])
    return float(p50), float(p95)


if __name__ == "__main__":
    main()
