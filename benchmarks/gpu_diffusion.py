"""The GPU proof of the diffusion stage: an SDXL- (or SD 1.5-) architecture inpainting pipeline with a ControlNet and
an IP-Adapter, random weights at full size from the configs below (nothing is downloaded), exported by
export.diffusion to TensorRT engines (FP16; the VAE FP32, as its config asks) and timed on one GPU. Random
weights: the images are noise, the latencies are the architectures'.

    python -m benchmarks.gpu_diffusion --family sdxl --out DIR [--max-batch 8] [--steps 25] [--repeat 10]
    python -m benchmarks.gpu_diffusion --family sdxl --out DIR --runtime torch

Needs an NVIDIA GPU (driver), the tensorrt Python package and polygraphy: without them it stops before any work
with exit code 2. `--runtime torch` needs no TensorRT: it times the exporter's own torch modules (the contract
models' PyTorch reference, FP16 with the VAE in FP32, eager, the UNet's attention through SDPA) through the same
loop, where TensorRT cannot be installed (published figures put TensorRT ahead of eager PyTorch).

Writes DIR/gpu_diffusion_<runtime>_<family>.json and .md; DIR/build-<family> (the engines) is reused by a rerun,
so a second run only measures. The random weights (~22 GB for SDXL in FP32) live in a temporary folder under DIR
while exporting, and export.diffusion keeps its ONNX files (as large) under TMPDIR until the build is done.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import ctypes
import json
import pstats
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.bench_diffusion import BATCHES, Report, run_benchmark, scene_request
from export.diffusion import TinyModels, build_tiny, export_build
from export.diffusion.build import MANIFEST, add_component, finish_build, new_manifest
from export.diffusion.components import Component, load_components
from export.diffusion.onnx_export import ParityError
from export.diffusion.tensorrt import TensorRTUnavailable, require_tensorrt
from export.diffusion.tiny import save_ip_adapter
from replate.diffusion import Build, Components, generate, load_build

CUDA_DRIVER = "libcuda.so.1"
BUDGET_MS = 12_000  # per 1.05 MP image on one GPU (docs/performance.md)
STEPS = 25
RESULTS = "gpu_diffusion"
RUNTIMES = ("tensorrt", "torch")


class GpuUnavailable(RuntimeError):
    """No NVIDIA driver or no CUDA device here."""


@dataclass(frozen=True)
class Architecture:
    """Constructor arguments of every model of a family, as the published configs give them (diffusers
    `UNet2DConditionModel` / `AutoencoderKL`, transformers `CLIPTextConfig` / `CLIPVisionConfig`)."""

    family: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    text_encoders: dict[str, dict[str, Any]]
    """By pipeline subfolder; text_encoder_2 is a CLIPTextModelWithProjection."""
    image_encoder: dict[str, Any]
    controlnet: dict[str, Any] = field(default_factory=dict)
    """ControlNetModel arguments beyond the UNet's own."""

    def controlnet_config(self) -> dict[str, Any]:
        """The ControlNet mirrors the UNet's down path; its noisy-latent input has 4 channels (the UNet's 9 add mask
        and masked image)."""
        down_path = {key: value for key, value in self.unet.items() if key not in _UNET_ONLY}
        return {**down_path, "in_channels": 4, **self.controlnet}


_VAE = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "force_upcast": True,
}
_CLIP_L = {  # openai/clip-vit-large-patch14's text tower: SD 1.5's encoder and SDXL's first
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
_OPENCLIP_BIGG = {  # OpenCLIP ViT-bigG/14's text tower: SDXL's second encoder
    **_CLIP_L,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}
_VIT_H = {  # OpenCLIP ViT-H/14's vision tower: the image encoder of h94/IP-Adapter's ip-adapter_sd15 and _sdxl_vit-h
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "gelu",
    "projection_dim": 1024,
}
_UNET_ONLY = ("sample_size", "out_channels", "up_block_types")
_CONTROLNET = {"conditioning_embedding_out_channels": (16, 32, 96, 256)}

ARCHITECTURES = {
    # stabilityai/stable-diffusion-xl-base-1.0; UNet in_channels 9: diffusers/stable-diffusion-xl-1.0-inpainting-0.1
    "sdxl": Architecture(
        family="sdxl",
        unet={
            "sample_size": 128,
            "in_channels": 9,
            "out_channels": 4,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            "block_out_channels": (320, 640, 1280),
            "layers_per_block": 2,
            "transformer_layers_per_block": (1, 2, 10),
            "attention_head_dim": (5, 10, 20),  # diffusers' name for the number of heads: 64 channels each
            "cross_attention_dim": 2048,
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2816,  # 6 time ids x 256 + bigG's 1280 pooled
        },
        vae={**_VAE, "sample_size": 1024, "scaling_factor": 0.13025},
        text_encoders={"text_encoder": _CLIP_L, "text_encoder_2": _OPENCLIP_BIGG},
        image_encoder=_VIT_H,
        controlnet=_CONTROLNET,  # diffusers/controlnet-canny-sdxl-1.0 mirrors the whole down path: 10 layers deep
    ),
    # stable-diffusion-v1-5/stable-diffusion-inpainting
    "sd": Architecture(
        family="sd",
        unet={
            "sample_size": 64,
            "in_channels": 9,
            "out_channels": 4,
            "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            "block_out_channels": (320, 640, 1280, 1280),
            "layers_per_block": 2,
            "attention_head_dim": 8,
            "cross_attention_dim": 768,
        },
        vae={**_VAE, "sample_size": 512, "scaling_factor": 0.18215},
        text_encoders={"text_encoder": _CLIP_L},
        image_encoder=_VIT_H,
        controlnet=_CONTROLNET,
    ),
}


def cuda_device() -> str:
    """The name of CUDA device 0, asked of the NVIDIA driver itself (no toolkit, no torch build needed)."""
    try:
        driver = ctypes.CDLL(CUDA_DRIVER)
    except OSError as exc:
        raise GpuUnavailable(f"no NVIDIA driver here ({CUDA_DRIVER} does not load)") from exc
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        raise GpuUnavailable("the NVIDIA driver sees no CUDA device")
    name = ctypes.create_string_buffer(256)
    driver.cuDeviceGetName(name, len(name), 0)
    return name.value.decode()


def write_models(dst: Path, architecture: Architecture, *, seed: int = 0) -> TinyModels:
    """Random models of `architecture` in the folders export_build reads: build_tiny's layout (model_index.json,
    tokenizer(s), scheduler, the IP-Adapter's weight names), every model in it replaced at full size."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    models = build_tiny(dst, architecture.family)  # type: ignore[arg-type]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**architecture.unet)
    _replace(models.pipeline / "unet", unet)
    _replace(models.pipeline / "vae", AutoencoderKL(**architecture.vae))
    for subfolder, config in architecture.text_encoders.items():
        _replace(models.pipeline / subfolder, _text_encoder(models.pipeline, subfolder, config))
    controlnet = ControlNetModel(**architecture.controlnet_config())
    with torch.no_grad():  # a new ControlNet's zero convolutions: a trained one's are not, and parity needs signal
        for parameter in controlnet.parameters():
            if not parameter.any():
                parameter.normal_(std=0.01)
    _replace(models.controlnet, controlnet)
    _write_ip_adapter(models.ip_adapter, unet, architecture.image_encoder)
    return models


def _replace(folder: Path, model: Any) -> None:
    """save_pretrained into an emptied folder: a sharded save beside the tiny model's single file would be
    ambiguous to from_pretrained."""
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)


def _text_encoder(pipeline: Path, subfolder: str, config: Mapping[str, Any]) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(pipeline / subfolder.replace("text_encoder", "tokenizer"))
    special = {f"{name}_token_id": getattr(tokenizer, f"{name}_token_id") for name in ("bos", "eos", "pad")}
    model_class = CLIPTextModelWithProjection if subfolder == "text_encoder_2" else CLIPTextModel
    return model_class(CLIPTextConfig(**config, **special))


def _write_ip_adapter(folder: Path, unet: Any, vision: Mapping[str, Any]) -> None:
    """build_tiny's IP-Adapter writer for the full UNet (to_k_ip / to_v_ip of every cross-attention at full size),
    then the full image encoder in place of the tiny one. Its projection keeps the tiny adapter's width, so that the
    adapter's image projection still fits: one matrix product on one token less or more, nothing a timing sees."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    save_ip_adapter(folder, unet)
    tiny = CLIPVisionConfig.from_pretrained(folder / "image_encoder")
    shutil.rmtree(folder / "image_encoder")
    config = CLIPVisionConfig(**{**vision, "projection_dim": tiny.projection_dim})
    CLIPVisionModelWithProjection(config).save_pretrained(folder / "image_encoder")


def export_engines(out: Path, architecture: Architecture, *, max_batch: int) -> Path:
    """out/build-<family>: the gpu-tensorrt build of random full-size models (FP16), unless a finished one is there."""
    build_dir = out / f"build-{architecture.family}"
    if (build_dir / MANIFEST).is_file():
        print(f"reusing {build_dir} (delete it to rebuild)")
        return build_dir
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="models-", dir=out) as tmp:
        models = write_models(Path(tmp), architecture)
        export_build(
            models.pipeline,
            build_dir,
            target="gpu-tensorrt",
            controlnet_dir=models.controlnet,
            controlnet_kind_name="canny",
            ip_adapter_dir=models.ip_adapter,
            max_batch=max_batch,
            fp16=True,
        )
    return build_dir


class TensorRTComponents:
    """`Components` over <build>/diffusion_*/1/model.plan, one polygraphy TrtRunner per engine. Calls run one at a
    time and synchronously (one CUDA stream each, as one Triton instance per model): the latency of one request
    alone on the GPU. Inputs and outputs cross host memory, as at Triton's boundary."""

    def __init__(self, build_dir: Path, stack: ExitStack) -> None:
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        # "runtime": device memory for the shapes in use; the default would reserve every engine's largest profile
        # shape (batch max_batch at 1344 px) at once.
        self._runners = {
            path.parent.parent.name: stack.enter_context(
                TrtRunner(EngineFromBytes(BytesFromPath(str(path))), allocation_strategy="runtime")
            )
            for path in sorted(build_dir.glob("diffusion_*/1/model.plan"))
        }

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        results = self._runners[model].infer(dict(inputs))
        return {name: np.array(results[name]) for name in outputs}  # a copy: the runner reuses its output buffers


class TorchComponents:
    """`Components` over the exporter's torch modules on one device, each in its build dtype. Calls run one at a
    time and synchronously, and inputs and outputs cross host memory, as TensorRTComponents' do."""

    def __init__(self, components: Mapping[str, Component], dtypes: Mapping[str, str], device: str) -> None:
        self._device = torch.device(device)
        self._dtypes = {name: getattr(torch, dtype) for name, dtype in dtypes.items()}
        self._components = {name: c.to(self._device, self._dtypes[name]) for name, c in components.items()}

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        dtype = self._dtypes[model]
        tensors = {}
        for name, array in inputs.items():
            tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self._device)
            tensors[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
        results = self._components[model].run(tensors)
        return {name: results[name].float().cpu().numpy() for name in outputs}


def measure_tensorrt(build_dir: Path, setting: dict[str, Any], *, repeat: int, request_repeat: int) -> Report:
    manifest = json.loads((build_dir / MANIFEST).read_text())
    with ExitStack() as stack:
        benchmark = run_benchmark(
            load_build(build_dir),
            manifest,
            TensorRTComponents(build_dir, stack),
            setting=setting,
            batches=BATCHES,
            repeat=repeat,
            request_repeat=request_repeat,
        )
        return asyncio.run(benchmark)


def measure_torch(
    out: Path,
    architecture: Architecture,
    setting: dict[str, Any],
    *,
    device: str = "cuda",
    fp16: bool = True,
    repeat: int,
    request_repeat: int,
    profile: Path | None = None,
) -> Report:
    """Random full-size models written and loaded as export.diffusion loads an operator's folders, then timed as
    TorchComponents on device. out/build-<family>-torch gets the manifest and assets (no model files). With
    `profile`, one more whole request runs under cProfile and its top functions go to that file."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="models-", dir=out) as tmp:
        models = write_models(Path(tmp), architecture)
        manifest = new_manifest(models.pipeline, "torch", fp16=fp16, controlnet_dir=models.controlnet, kind="canny")
        components = load_components(
            models.pipeline, controlnet_dir=models.controlnet, ip_adapter_dir=models.ip_adapter
        )
        dtypes = {name: add_component(manifest, component) for name, component in components.items()}
        build_dir = out / f"build-{architecture.family}-torch"
        finish_build(models.pipeline, build_dir, manifest)
        runner = TorchComponents(components, dtypes, device)  # on the device before the model files go
    build = load_build(build_dir)
    benchmark = run_benchmark(
        build, manifest, runner, setting=setting, batches=BATCHES, repeat=repeat, request_repeat=request_repeat
    )
    report = asyncio.run(benchmark)
    if profile is not None:
        profile_request(build, runner, setting["steps"], profile)
    return report


def profile_request(build: Build, components: Components, steps: int, path: Path) -> None:
    """One whole request under cProfile: the 40 functions with the most time of their own, written to path."""
    request = scene_request(build.manifest.default_size, steps)
    with cProfile.Profile() as profiler:
        asyncio.run(generate(request, build, components))
    with path.open("w") as out:
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)


def write_results(out: Path, report: Report, name: str) -> str:
    """out/<name>.json and .md; returns the markdown."""
    within = "within" if report.request.p50_ms <= BUDGET_MS else "over"
    summary = f"whole request p50 {report.request.p50_ms / 1000:.2f} s: {within} the {BUDGET_MS / 1000:.0f} s budget"
    setting = "\n".join(f"- {key}: {value}" for key, value in report.setting.items())
    text = f"# Diffusion stage on a GPU (random weights)\n\n{setting}\n\n{report.markdown()}\n\n{summary}\n"
    (out / f"{name}.json").write_text(json.dumps(report.as_json() | {"budget_ms": BUDGET_MS}, indent=2) + "\n")
    (out / f"{name}.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_batch < max(BATCHES):
        parser.error(f"--max-batch must be at least {max(BATCHES)}: the UNet is timed at batches {BATCHES}")
    try:
        device = cuda_device()
        runtime = require_tensorrt_10() if args.runtime == "tensorrt" else require_torch_cuda()
    except (GpuUnavailable, TensorRTUnavailable, ImportError) as exc:
        print(
            f"error: {exc}. The GPU proof needs an NVIDIA GPU, and TensorRT 10 and polygraphy unless --runtime torch: "
            "run it in a GPU container (docs/performance.md); `python -m benchmarks.bench_diffusion` measures on "
            "the CPU.",
            file=sys.stderr,
        )
        return 2
    architecture = ARCHITECTURES[args.family]
    setting = {
        "device": device,
        "runtime": runtime,
        "models": f"random {args.family} at full size, FP16 (VAE FP32), ControlNet canny, IP-Adapter",
        "steps": args.steps,
    }
    repeats = {"repeat": args.repeat, "request_repeat": args.request_repeat}
    if args.runtime == "torch":
        report = measure_torch(args.out, architecture, setting, **repeats, profile=args.profile)
        print(write_results(args.out, report, f"{RESULTS}_torch_{args.family}"))
        return 0
    try:
        build_dir = export_engines(args.out, architecture, max_batch=args.max_batch)
    except ParityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = measure_tensorrt(build_dir, setting | {"max_batch": args.max_batch}, **repeats)
    print(write_results(args.out, report, f"{RESULTS}_tensorrt_{args.family}"))
    return 0


def require_tensorrt_10() -> str:
    """The runtime's description; TensorRTUnavailable or ImportError when TensorRT 10 or polygraphy is missing."""
    tensorrt = require_tensorrt()
    if not hasattr(tensorrt.BuilderFlag, "FP16"):
        raise TensorRTUnavailable(
            f"TensorRT {tensorrt.__version__} has no FP16 builder flag (TensorRT 11 removed weak typing), which "
            "export/diffusion/tensorrt.py builds with: use TensorRT 10"
        )
    import polygraphy

    return f"TensorRT {tensorrt.__version__} via polygraphy {polygraphy.__version__}, in-process"


def require_torch_cuda() -> str:
    if not torch.cuda.is_available():
        raise GpuUnavailable(f"PyTorch {torch.__version__} sees no CUDA device (a CPU build?)")
    return f"PyTorch {torch.__version__} eager (SDPA attention), in-process, no TensorRT"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_diffusion", description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=tuple(ARCHITECTURES), default="sdxl")
    parser.add_argument("--out", type=Path, required=True, help="results, and the build reused by a rerun")
    parser.add_argument("--runtime", choices=RUNTIMES, default="tensorrt", help="torch: no TensorRT, no export")
    parser.add_argument("--profile", type=Path, help="torch: profile one more request (cProfile), top functions here")
    parser.add_argument("--max-batch", type=int, default=8, help="the engines' largest batch (Triton max_batch_size)")
    parser.add_argument("--steps", type=int, default=STEPS, help="denoising steps of the whole request")
    parser.add_argument("--repeat", type=int, default=10, help="timed calls per component (after a warm-up)")
    parser.add_argument("--request-repeat", type=int, default=3, help="timed whole requests (after a warm-up)")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
