"""The denoising loop of the diffusion stage, written once over the async `Components` seam.

It follows diffusers' inpainting pipelines step for step (StableDiffusion[XL][ControlNet]InpaintPipeline), so that
the same seed gives the same plate as diffusers on the same weights, with three deliberate differences: the VAE
encoder returns the latent mean (docs/diffusion.md), so no noise is drawn for encoding; the unconditional branch
runs with IP-Adapter scale 0 (diffusers projects zero image embeddings, which the contract's fused image encoder
cannot); strength so low that no step would run still runs one.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from replate.diffusion._conditioning import Conditioning, prepare_conditioning, reference_pixels, resize
from replate.diffusion._text import TextConditioning, encode_prompts
from replate.diffusion.build import Build, Manifest
from replate.diffusion.components import Components
from replate.diffusion.request import SceneRequest
from replate.diffusion.schedulers import make_scheduler
from replate.timing import timed


@dataclass(frozen=True)
class GeneratedScenes:
    plates: list[np.ndarray]
    """One uint8 (H, W, 3) RGB plate per output, at the input's size."""
    info: dict[str, Any]


async def generate(request: SceneRequest, build: Build, components: Components) -> GeneratedScenes:
    """Paint `request.num_outputs` scenes around the subject of `request.image` (seeds seed, seed + 1, ...)."""
    started, timings = time.perf_counter(), {}
    manifest = build.manifest
    width, height = request.working_size(manifest.default_size)
    guided = request.guidance_scale > 1
    scheduler = make_scheduler(request.scheduler, build.scheduler_config)
    timesteps = _timesteps(scheduler, request.steps, request.strength)
    generators = [torch.Generator().manual_seed(request.seed + index) for index in range(request.num_outputs)]
    conditioning = prepare_conditioning(request.image, request.alpha, width, height, manifest.vae_scale_factor)
    with timed(timings, "encode"):
        (text, negative), (masked_latents, image_latents), ip_tokens = await asyncio.gather(
            encode_prompts(build, components, request.prompt, request.negative_prompt, with_negative=guided),
            _encode_images(components, conditioning, with_source=request.strength < 1),
            _encode_reference(components, manifest, request.reference),
        )
    latents = _initial_latents(scheduler, generators, masked_latents.shape, image_latents, timesteps)
    inputs = _step_inputs(request, manifest, conditioning, masked_latents, (text, negative), ip_tokens)
    with timed(timings, "denoise"):
        denoiser = _Denoiser(components, scheduler, inputs, request.guidance_scale, generators)
        latents = await denoiser.run(latents, timesteps)
    with timed(timings, "decode"):
        decoded = await components.infer("diffusion_vae_decoder", {"latent": _np(latents)}, ["image"])
    plates = _plates(decoded["image"], request.image.shape[:2], manifest.vae_scale_factor)
    timings["total"] = (time.perf_counter() - started) * 1000
    unet_calls = len(timesteps)
    return GeneratedScenes(plates, _info(request, manifest, (width, height), unet_calls, ip_tokens, timings))


def _timesteps(scheduler: SchedulerMixin, steps: int, strength: float) -> torch.Tensor:
    """The schedule diffusers' img2img/inpaint pipelines run (`get_timesteps`): the last strength x steps."""
    scheduler.set_timesteps(steps)
    start = steps - max(1, min(int(steps * strength), steps))
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * scheduler.order)
    return scheduler.timesteps[start * scheduler.order :]


async def _encode_images(
    components: Components, conditioning: Conditioning, *, with_source: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(masked-image latent, source latent or None), each (1, 4, h, w), in one VAE encoder call."""
    images = [conditioning.masked_image, conditioning.image] if with_source else [conditioning.masked_image]
    result = await components.infer("diffusion_vae_encoder", {"image": _np(torch.cat(images))}, ["latent"])
    latents = torch.from_numpy(np.asarray(result["latent"], dtype=np.float32))
    return latents[:1], latents[1:] if with_source else None


async def _encode_reference(
    components: Components, manifest: Manifest, reference: np.ndarray | None
) -> torch.Tensor | None:
    """(1, T, D) IP-Adapter tokens of the reference photo; None without one or without an IP-Adapter."""
    if reference is None or manifest.ip_adapter is None:
        return None
    pixels = reference_pixels(reference, manifest.ip_adapter.image_size)
    result = await components.infer("diffusion_image_encoder", {"pixel_values": pixels}, ["ip_tokens"])
    return torch.from_numpy(np.asarray(result["ip_tokens"], dtype=np.float32))


def _initial_latents(
    scheduler: SchedulerMixin,
    generators: list[torch.Generator],
    latent_shape: torch.Size,
    image_latents: torch.Tensor | None,
    timesteps: torch.Tensor,
) -> torch.Tensor:
    """Pure noise (strength 1) or the source latent noised to the first timestep, drawn as diffusers draws it."""
    count = len(generators)
    noise = randn_tensor((count, *latent_shape[1:]), generator=generators, dtype=torch.float32)
    if image_latents is None:
        return noise * scheduler.init_noise_sigma
    return scheduler.add_noise(image_latents.repeat(count, 1, 1, 1), noise, timesteps[:1].repeat(count))


@dataclass(frozen=True)
class _StepInputs:
    """What every step sends besides its sample and timestep, batched [unconditional x N, conditional x N]
    (diffusers' order) with guidance, [conditional x N] without."""

    unet: dict[str, np.ndarray]
    inpaint: torch.Tensor
    """Mask and masked-image latent, the channels 5-9 of the UNet's sample."""
    controlnet: dict[str, np.ndarray] | None
    residuals: list[str]


def _step_inputs(
    request: SceneRequest,
    manifest: Manifest,
    conditioning: Conditioning,
    masked_latents: torch.Tensor,
    texts: tuple[TextConditioning, TextConditioning | None],
    ip_tokens: torch.Tensor | None,
) -> _StepInputs:
    text, negative = texts
    rows = [negative, text] if negative is not None else [text]
    count, batch = request.num_outputs, request.num_outputs * len(rows)
    mask = F.interpolate(conditioning.mask, size=masked_latents.shape[-2:])
    shared = {"encoder_hidden_states": torch.cat([row.hidden_states.repeat(count, 1, 1) for row in rows])}
    if manifest.family == "sdxl":
        height, width = conditioning.image.shape[-2:]
        shared["text_embeds"] = torch.cat([row.text_embeds.repeat(count, 1) for row in rows])
        # Micro-conditioning as diffusers' defaults: original size = target size = working size, no crop.
        shared["time_ids"] = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32).repeat(batch, 1)
    unet = dict(shared)
    if manifest.ip_adapter is not None:
        width = shared["encoder_hidden_states"].shape[-1]
        tokens = ip_tokens if ip_tokens is not None else torch.zeros(1, manifest.ip_adapter.tokens, width)
        scale = request.ip_adapter_weight if ip_tokens is not None else 0.0
        unet["ip_tokens"] = tokens.repeat(batch, 1, 1)
        unet["ip_scale"] = torch.tensor([0.0] * (batch - count) + [scale] * count)
    controlnet, residuals = None, []
    if manifest.controlnet is not None:
        controlnet = {
            **shared,
            "controlnet_cond": conditioning.control_image(manifest.controlnet.kind).repeat(batch, 1, 1, 1),
            "conditioning_scale": torch.full((batch,), request.cn_weight),
        }
        residuals = [*(f"down_residual_{k}" for k in range(manifest.controlnet.residuals)), "mid_residual"]
    return _StepInputs(
        unet=_arrays(unet),
        inpaint=torch.cat([mask, masked_latents], dim=1).repeat(batch, 1, 1, 1),
        controlnet=_arrays(controlnet) if controlnet is not None else None,
        residuals=residuals,
    )


@dataclass(frozen=True)
class _Denoiser:
    components: Components
    scheduler: SchedulerMixin
    inputs: _StepInputs
    guidance_scale: float
    generators: list[torch.Generator]

    async def run(self, latents: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        guided = self.guidance_scale > 1
        accepts_generator = "generator" in inspect.signature(self.scheduler.step).parameters
        step_kwargs = {"generator": self.generators} if accepts_generator else {}
        for t in timesteps:
            model_input = self.scheduler.scale_model_input(torch.cat([latents] * 2) if guided else latents, t)
            noise_pred = await self.predict_noise(model_input, t)
            if guided:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + self.guidance_scale * (cond - uncond)
            latents = self.scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
        return latents

    async def predict_noise(self, model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One UNet call (after one ControlNet call, when the build has one) on the whole guided batch."""
        timestep = np.full(model_input.shape[0], float(t), dtype=np.float32)
        sample = torch.cat([model_input, self.inputs.inpaint], dim=1)
        unet_inputs = {**self.inputs.unet, "sample": _np(sample), "timestep": timestep}
        if self.inputs.controlnet is not None:
            controlnet_inputs = {**self.inputs.controlnet, "sample": _np(model_input), "timestep": timestep}
            unet_inputs |= await self.components.infer("diffusion_controlnet", controlnet_inputs, self.inputs.residuals)
        result = await self.components.infer("diffusion_unet", unet_inputs, ["noise_pred"])
        return torch.from_numpy(np.asarray(result["noise_pred"], dtype=np.float32))


def _plates(image: np.ndarray, size: tuple[int, int], vae_scale_factor: int) -> list[np.ndarray]:
    """VAE decoder output (N, 3, h, w) in [-1, 1] -> uint8 (H, W, 3) plates at the input's size."""
    pixels = VaeImageProcessor(vae_scale_factor=vae_scale_factor).postprocess(
        torch.from_numpy(np.asarray(image, dtype=np.float32)), output_type="np"
    )
    height, width = size
    return [resize((plate * 255).round().astype(np.uint8), width, height) for plate in pixels]


def _info(
    request: SceneRequest,
    manifest: Manifest,
    size: tuple[int, int],
    unet_calls: int,
    ip_tokens: torch.Tensor | None,
    timings: dict[str, float],
) -> dict[str, Any]:
    notes = []
    if request.reference is not None and manifest.ip_adapter is None:
        notes.append("the reference image was not used: this diffusion build has no IP-Adapter")
    if manifest.controlnet is not None and manifest.controlnet.kind == "depth":
        notes.append(
            "the depth ControlNet was given a two-plane depth from the matte (subject in front), not a depth estimate"
        )
    return {
        "engine": manifest.engine,
        "scheduler": request.scheduler,
        "num_inference_steps": request.steps,
        "guidance_scale": request.guidance_scale,
        "strength": request.strength,
        "cn_weight": request.cn_weight if manifest.controlnet is not None else None,
        "ip_adapter_weight": request.ip_adapter_weight if ip_tokens is not None else None,
        "seeds": [request.seed + index for index in range(request.num_outputs)],
        "resolution": list(size),
        "unet_calls": unet_calls,
        "timings_ms": {name: round(ms, 2) for name, ms in timings.items()},
        "notes": notes,
    }


def _np(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().numpy(), dtype=np.float32)


def _arrays(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {name: _np(tensor) for name, tensor in tensors.items()}
