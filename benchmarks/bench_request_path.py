"""Request-path benchmark: real tritonserver + gateway (uvicorn) on this machine, ~1.05 MP studio shot.

Prints p50/p95 of: replace- or remove-background through the gateway (HTTP), the same pipeline called on Triton
directly (gRPC), the `matting` model alone on Triton, the gateway's overhead (gateway p50 - direct Triton p50), and
each model's batching (inferences per execution, from Triton's statistics). Run from the repository root:
`python -m benchmarks.bench_request_path [--operation replace|remove] [--image studio|photo] [--concurrency 8]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import cv2
import httpx
import numpy as np
import tritonclient.grpc.aio as grpcclient

from gateway.admin import create_key
from gateway.migrate import upgrade_database
from gateway.settings import Settings
from gateway.triton import TritonPipelines
from gateway.tritonserver import TritonServer
from replate.imageio import encode_image
from tests.integration.conftest import GatewayThread
from tests.synthetic import make_studio_shot

PARAMS = {"scene_prompt": "modern kitchen counter with morning light", "seed": 1, "output_format": "png"}


async def measure(label: str, call: Callable[[], Awaitable[object]], requests: int, concurrency: int) -> float:
    await call()  # warm-up: first-call costs are not steady state
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
    await asyncio.gather(*(worker(n) for n in shares))
    wall_s = time.perf_counter() - started
    p50 = statistics.median(latencies)
    p95 = float(np.percentile(latencies, 95))
    print(f"{label:<44} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   {requests / wall_s:6.2f} req/s")
    return p50


OPERATIONS = {
    # operation: (HTTP path, JSON image field, Triton model, PARAMS)
    "replace": ("/v1/image/replace-background", "image_url", "replace_background", PARAMS),
    "remove": ("/v1/remove-background", "image", "remove_background", {"channels": "rgba", "output_format": "png"}),
}


def bench_image(kind: str) -> np.ndarray:
    """~1.05 MP RGB: a synthetic studio shot (auto picks the studio matte), a photo (auto picks the segmenter) or a
    hazy photo (the segmenter leaves a haze, so `replate.matting.carve` runs GrabCut too)."""
    if kind == "studio":
        return make_studio_shot(1250, 840, seed=1)[0]
    from skimage import data  # a dev dependency, like this script

    photo = data.chelsea() if kind == "hazy-photo" else data.astronaut()
    height = round(photo.shape[0] * (1.05e6 / (photo.shape[0] * photo.shape[1])) ** 0.5)
    width = round(1.05e6 / height)
    return cv2.resize(photo, (width, height), interpolation=cv2.INTER_CUBIC)


async def run(args: argparse.Namespace, triton: TritonServer, data_dir: Path) -> None:
    rgb = bench_image(args.image)
    jpeg = encode_image(rgb, "jpeg")
    path, field, model, params = OPERATIONS[args.operation]
    settings = Settings(data_dir=data_dir, triton_url=triton.grpc_url, grpc_port=0)
    await asyncio.to_thread(upgrade_database, settings.database_url)
    key = await create_key(settings, "bench", 10**9)
    body = {field: "data:image/jpeg;base64," + base64.b64encode(jpeg).decode(), **params}
    megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
    print(
        f"{args.operation} on a {args.image} image {rgb.shape[1]}x{rgb.shape[0]} ({megapixels:.2f} MP) JPEG,"
        f" {len(jpeg)} B; {args.requests} requests, concurrency {args.concurrency}"
    )
    pipelines = TritonPipelines(triton.grpc_url, timeout_s=300)
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    matting_input = grpcclient.InferInput("IMAGE", [1, *rgb.shape], "UINT8")
    matting_input.set_data_from_numpy(rgb[np.newaxis])
    with GatewayThread(settings) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=300) as http:

            async def through_gateway() -> None:
                response = await http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
                response.raise_for_status()

            gateway_p50 = await measure(
                f"{path} via the gateway (HTTP)", through_gateway, args.requests, args.concurrency
            )
    limits = {"max_megapixels": 25.0, "max_bytes": 20 * 1024 * 1024}
    direct_p50 = await measure(
        f"{model} on Triton directly (gRPC)",
        lambda: pipelines.run(model, jpeg, {**params, **limits}),
        args.requests,
        args.concurrency,
    )
    await measure(
        "matting model alone on Triton (gRPC)",
        lambda: client.infer("matting", [matting_input]),
        args.requests,
        args.concurrency,
    )
    print(f"{'gateway overhead (gateway p50 - Triton p50)':<44} {gateway_p50 - direct_p50:8.1f} ms")
    for name in (model, "matting", "matting_segmenter"):
        stats = (await client.get_inference_statistics(name, as_json=True))["model_stats"][0]
        executions, inferences = int(stats.get("execution_count", 0)), int(stats.get("inference_count", 0))
        gain = inferences / executions if executions else 0.0
        print(f"{name:<20} {inferences:4d} inferences in {executions:4d} executions (mean batch {gain:.2f})")
    await client.close()
    await pipelines.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--operation", choices=sorted(OPERATIONS), default="replace")
    parser.add_argument("--image", choices=("studio", "photo", "hazy-photo"), default="studio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, TritonServer(Path(tmp) / "triton", Settings().models_dir) as triton:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        asyncio.run(run(args, triton, data_dir))


if __name__ == "__main__":
    main()
