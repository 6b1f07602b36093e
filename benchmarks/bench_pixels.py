"""Latency of the pixel library on a synthetic studio shot; prints p50/p95, asserts nothing.

Run from the repository root:  python -m benchmarks.bench_pixels [--megapixels 1.05] [--repeat 10]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from replate.compose import compose, cutout
from replate.imageio import ImageLimits, decode_image, encode_image
from replate.matting import estimate_matte
from replate.scene import SceneSpec, make_scene
from tests.synthetic import make_studio_shot

ASPECT = 1250 / 840


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=1.05)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    height = round(math.sqrt(args.megapixels * 1e6 / ASPECT))
    width = round(height * ASPECT)
    rgb, _alpha = make_studio_shot(width, height, seed=0)
    jpeg, png = encode_image(rgb, "jpeg"), encode_image(rgb, "png")
    matte = estimate_matte(rgb)
    scene = make_scene(SceneSpec(prompt="warm marble studio"), width, height).rgb
    reference = make_studio_shot(1600, 1200, seed=1)[0]
    cut = cutout(rgb, matte)
    limits = ImageLimits()

    cases: list[tuple[str, Callable[[], object]]] = [
        ("decode jpeg", lambda: decode_image(jpeg, limits)),
        ("decode png", lambda: decode_image(png, limits)),
        ("matting studio", lambda: estimate_matte(rgb)),
        ("scene color", lambda: make_scene(SceneSpec(color="#e8e4dc"), width, height)),
        ("scene reference", lambda: make_scene(SceneSpec(reference=reference), width, height)),
        ("scene studio", lambda: make_scene(SceneSpec(prompt="warm marble studio", seed=3), width, height)),
        ("compose", lambda: compose(rgb, matte, scene)),
        ("cutout", lambda: cutout(rgb, matte)),
        ("encode png (rgb)", lambda: encode_image(rgb, "png")),
        ("encode png (rgba)", lambda: encode_image(cut, "png")),
        ("encode jpeg", lambda: encode_image(rgb, "jpeg")),
        ("encode webp (rgba)", lambda: encode_image(cut, "webp")),
    ]
    print(f"{width}x{height} ({width * height / 1e6:.2f} MP), {args.repeat} runs each")
    print(f"{'step':<22}{'p50 ms':>9}{'p95 ms':>9}")
    for name, run in cases:
        p50, p95 = _percentiles(run, args.repeat)
        print(f"{name:<22}{p50:>9.1f}{p95:>9.1f}")


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
