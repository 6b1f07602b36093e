"""The denoising loop on tiny random models (export.diffusion.tiny), with export.diffusion's torch reference
components as the in-process Components, against diffusers' own inpainting pipelines on the same weights."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from transformers import CLIPTokenizer

from export.diffusion.components import Component, load_components
from export.diffusion.tiny import IP_ADAPTER_WEIGHTS, TinyModels, build_tiny
from replate.diffusion import SCHEDULERS, Build, GeneratedScenes, Manifest, SceneRequest, generate, make_scheduler
from replate.diffusion._conditioning import prepare_conditioning
from replate.diffusion.build import ControlNetSpec, IPAdapterSpec

SIZE = 64
PLATE_TOLERANCE = 2
"""Max |loop - diffusers| per uint8 channel value (float32 reordering of the same maths; typically 0 or 1)."""


class TorchComponents:
    """Components over export.diffusion's torch reference modules, recording (model, batch) per call."""

    def __init__(self, components: Mapping[str, Component]) -> None:
        self.modules = components
        self.calls: list[tuple[str, int]] = []

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        self.calls.append((model, len(next(iter(inputs.values())))))
        result = self.modules[model].run({name: torch.from_numpy(value) for name, value in inputs.items()})
        return {name: result[name].numpy() for name in outputs}

    def batches(self, model: str) -> list[int]:
        return [batch for name, batch in self.calls if name == model]


@dataclass
class Tiny:
    models: TinyModels
    build: Build
    components: TorchComponents

    def run(self, **params: Any) -> GeneratedScenes:
        self.components.calls.clear()
        return asyncio.run(generate(scene_request(**params), self.build, self.components))


def scene_request(**params: Any) -> SceneRequest:
    image, alpha = subject_photo()
    defaults = {"prompt": "a photo of the beach at sunset", "mode": "quality", "num_inference_steps": 20}
    return SceneRequest(image=image, alpha=alpha, **(defaults | params))


def subject_photo(height: int = SIZE, width: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A noisy gradient with a bright disc (the subject, alpha 255) in the middle."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:height, :width]
    image = np.stack([x * 255 / width, y * 255 / height, np.full_like(x, 90.0)], axis=-1)
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(height, width) / 4) ** 2
    image[disc] = (240, 200, 60)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    return image, (disc * 255).astype(np.uint8)


def _tiny(root: Path, family: str, *, controlnet: bool, ip_adapter: bool) -> Tiny:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers / transformers deprecations while saving and loading
        models = build_tiny(root, family)  # type: ignore[arg-type]
        components = load_components(
            models.pipeline,
            controlnet_dir=models.controlnet if controlnet else None,
            ip_adapter_dir=models.ip_adapter if ip_adapter else None,
        )
    manifest = Manifest(
        family=family,  # type: ignore[arg-type]
        engine=f"diffusion-{family}",
        vae_scale_factor=8,
        latent_channels=4,
        text_max_length=77,
        default_size=SIZE,
        controlnet=ControlNetSpec("canny", len(components["diffusion_controlnet"].outputs) - 1) if controlnet else None,
        ip_adapter=_ip_spec(components["diffusion_image_encoder"]) if ip_adapter else None,
    )
    folders = ("tokenizer", "tokenizer_2") if family == "sdxl" else ("tokenizer",)
    build = Build(
        path=root,
        manifest=manifest,
        tokenizers=tuple(CLIPTokenizer.from_pretrained(models.pipeline / folder) for folder in folders),
        scheduler_config=json.loads((models.pipeline / "scheduler" / "scheduler_config.json").read_text()),
    )
    return Tiny(models, build, TorchComponents(components))


def _ip_spec(encoder: Component) -> IPAdapterSpec:
    return IPAdapterSpec(
        image_size=encoder.inputs["pixel_values"].shape[-1], tokens=encoder.outputs["ip_tokens"].shape[1]
    )


@pytest.fixture(scope="module")
def sd(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return _tiny(tmp_path_factory.mktemp("sd"), "sd", controlnet=False, ip_adapter=False)


@pytest.fixture(scope="module")
def sd_full(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    """SD with a ControlNet and an IP-Adapter: the UNet takes residuals and IP tokens."""
    return _tiny(tmp_path_factory.mktemp("sd_full"), "sd", controlnet=True, ip_adapter=True)


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return _tiny(tmp_path_factory.mktemp("sdxl"), "sdxl", controlnet=False, ip_adapter=False)


def diffusers_plates(tiny: Tiny, request: SceneRequest, *, controlnet: bool = False) -> np.ndarray:
    """uint8 (N, SIZE, SIZE, 3): diffusers' inpainting pipeline (ControlNet's with `controlnet`, plus the IP-Adapter
    when the request has a reference) on the same weights, mask, seeds and scheduler."""
    pipe = _diffusers_pipeline(tiny, controlnet=controlnet, ip_adapter=request.reference is not None)
    pipe.scheduler = make_scheduler(request.scheduler, tiny.build.scheduler_config)
    if request.reference is not None:
        pipe.set_ip_adapter_scale(request.ip_adapter_weight)
    conditioning = prepare_conditioning(request.image, request.alpha, SIZE, SIZE, 8)
    call: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "image": request.image[np.newaxis].astype(np.float32) / 255,
        "mask_image": conditioning.mask.permute(0, 2, 3, 1).numpy(),
        "height": SIZE,
        "width": SIZE,
        "strength": request.strength,
        "guidance_scale": request.guidance_scale,
        "num_inference_steps": request.steps,
        "num_images_per_prompt": request.num_outputs,
        "generator": [torch.Generator().manual_seed(request.seed + i) for i in range(request.num_outputs)],
        "output_type": "np",
    }
    if controlnet:
        call["control_image"] = conditioning.edges.permute(0, 2, 3, 1).numpy()
        call["controlnet_conditioning_scale"] = request.cn_weight
    if request.reference is not None:
        call["ip_adapter_image"] = request.reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        images = pipe(**call).images
    return (images * 255).round().astype(np.uint8)


def _diffusers_pipeline(tiny: Tiny, *, controlnet: bool, ip_adapter: bool) -> Any:
    from diffusers import (
        ControlNetModel,
        StableDiffusionControlNetInpaintPipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionXLInpaintPipeline,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if controlnet:
            net = ControlNetModel.from_pretrained(tiny.models.controlnet, local_files_only=True)
            pipe = StableDiffusionControlNetInpaintPipeline.from_pretrained(
                tiny.models.pipeline, controlnet=net, local_files_only=True
            )
        elif tiny.build.manifest.family == "sdxl":
            pipe = StableDiffusionXLInpaintPipeline.from_pretrained(tiny.models.pipeline, local_files_only=True)
        else:
            pipe = StableDiffusionInpaintPipeline.from_pretrained(tiny.models.pipeline, local_files_only=True)
        if ip_adapter:
            pipe.load_ip_adapter(str(tiny.models.ip_adapter), subfolder="", weight_name=IP_ADAPTER_WEIGHTS)
    pipe.set_progress_bar_config(disable=True)
    _encode_to_mean(pipe.vae)
    return pipe


def _encode_to_mean(vae: torch.nn.Module) -> None:
    """The contract's VAE encoder returns the latent mean; diffusers samples it with the request's generator. Make
    diffusers take the mean too, so that both draw the same initial and ancestral noise from the same seeds."""
    encode = vae.encode
    vae.encode = lambda image, return_dict=True: SimpleNamespace(latents=encode(image).latent_dist.mean)


def _max_diff(ours: GeneratedScenes | np.ndarray, theirs: np.ndarray) -> int:
    plates = np.stack(ours.plates) if isinstance(ours, GeneratedScenes) else ours
    return int(np.abs(plates.astype(np.int16) - theirs.astype(np.int16)).max())


def reference_photo() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (40, 56, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("scheduler", "strength", "guidance_scale"),
    [("DDIM", 1.0, 7.5), ("Euler a", 0.6, 7.5), ("DPM++ 2M Karras", 1.0, 1.0)],
)
def test_matches_diffusers_inpaint(sd: Tiny, scheduler: str, strength: float, guidance_scale: float) -> None:
    params = {"scheduler": scheduler, "strength": strength, "guidance_scale": guidance_scale, "seed": 3}
    params |= {"num_outputs": 2, "negative_prompt": "city at night"}
    assert _max_diff(sd.run(**params), diffusers_plates(sd, scene_request(**params))) <= PLATE_TOLERANCE


@pytest.mark.parametrize("negative_prompt", [None, "studio"])
def test_matches_diffusers_sdxl_inpaint(sdxl: Tiny, negative_prompt: str | None) -> None:
    params = {"scheduler": "Euler", "guidance_scale": 5.0, "seed": 11, "negative_prompt": negative_prompt}
    assert _max_diff(sdxl.run(**params), diffusers_plates(sdxl, scene_request(**params))) <= PLATE_TOLERANCE
    assert sdxl.components.batches("diffusion_text_encoder_2") == [1 if negative_prompt is None else 2]


def test_matches_diffusers_controlnet_inpaint(sd_full: Tiny) -> None:
    params = {"scheduler": "UniPC", "guidance_scale": 6.0, "cn_weight": 0.8, "seed": 5, "num_outputs": 2}
    theirs = diffusers_plates(sd_full, scene_request(**params), controlnet=True)
    assert _max_diff(sd_full.run(**params), theirs) <= PLATE_TOLERANCE


def test_matches_diffusers_ip_adapter_without_guidance(sd_full: Tiny) -> None:
    """Without guidance there is no unconditional branch, where the loop deliberately differs (IP scale 0 there);
    cn_weight 0 makes the ControlNet residuals zeros, as if the UNet had none."""
    params = {"guidance_scale": 1.0, "cn_weight": 0.0, "reference": reference_photo(), "ip_adapter_weight": 0.7}
    assert _max_diff(sd_full.run(**params), diffusers_plates(sd_full, scene_request(**params))) <= PLATE_TOLERANCE


@pytest.mark.parametrize(("steps", "strength", "calls"), [(20, 1.0, 20), (27, 1.0, 27), (20, 0.5, 10)])
def test_unet_calls_follow_steps_and_strength(sd: Tiny, steps: int, strength: float, calls: int) -> None:
    result = sd.run(num_inference_steps=steps, strength=strength, scheduler="DDIM")
    assert len(sd.components.batches("diffusion_unet")) == result.info["unet_calls"] == calls


def test_guidance_one_drops_the_unconditional_branch(sd: Tiny) -> None:
    sd.run(num_outputs=3, guidance_scale=7.5)
    assert set(sd.components.batches("diffusion_unet")) == {6}
    assert sd.components.batches("diffusion_text_encoder") == [2]
    sd.run(num_outputs=3, guidance_scale=1.0)
    assert set(sd.components.batches("diffusion_unet")) == {3}
    assert sd.components.batches("diffusion_text_encoder") == [1]


def test_seeds_reproduce_and_outputs_are_independent(sd: Tiny) -> None:
    first, again = sd.run(seed=7, num_outputs=2), sd.run(seed=7, num_outputs=2)
    assert all(np.array_equal(a, b) for a, b in zip(first.plates, again.plates, strict=True))
    assert not np.array_equal(first.plates[0], sd.run(seed=8).plates[0])
    assert not np.array_equal(first.plates[0], first.plates[1])
    # output i is seed + i, whatever else shares its batch
    assert _max_diff(first.plates[1][np.newaxis], sd.run(seed=8).plates[0][np.newaxis]) <= 1
    assert first.info["seeds"] == [7, 8]


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_runs(sd: Tiny, name: str) -> None:
    result = sd.run(scheduler=name.lower(), seed=1)
    assert result.info["scheduler"] == name and result.info["unet_calls"] >= 20
    assert len(result.plates) == 1 and result.plates[0].shape == (SIZE, SIZE, 3)
    assert result.plates[0].std() > 0


def test_strength_changes_the_output(sd: Tiny) -> None:
    full, partial = sd.run(strength=1.0), sd.run(strength=0.5)
    assert _max_diff(full, np.stack(partial.plates)) > 10


def test_cn_weight_changes_the_output(sd_full: Tiny) -> None:
    off, on = sd_full.run(cn_weight=0.0), sd_full.run(cn_weight=1.0)
    assert set(sd_full.components.batches("diffusion_controlnet")) == {2}
    assert _max_diff(off, np.stack(on.plates)) > 0
    assert on.info["cn_weight"] == 1.0


def test_ip_adapter_weight_changes_the_output_with_a_reference(sd_full: Tiny) -> None:
    plain = sd_full.run()
    assert plain.info["ip_adapter_weight"] is None
    assert _max_diff(plain, np.stack(sd_full.run(reference=reference_photo(), ip_adapter_weight=0.0).plates)) <= 1
    weighted = sd_full.run(reference=reference_photo(), ip_adapter_weight=1.0)
    assert sd_full.components.batches("diffusion_image_encoder") == [1]
    assert _max_diff(plain, np.stack(weighted.plates)) > 0
    assert weighted.info["ip_adapter_weight"] == 1.0


def test_a_reference_without_ip_adapter_is_noted(sd: Tiny) -> None:
    result = sd.run(reference=reference_photo())
    assert "diffusion_image_encoder" not in dict(sd.components.calls)
    assert result.info["notes"] == ["the reference image was not used: this diffusion build has no IP-Adapter"]


def test_plates_have_the_input_size_and_info(sd: Tiny) -> None:
    image, alpha = subject_photo(height=48, width=90)
    request = SceneRequest(image=image, alpha=alpha, prompt="a forest", num_outputs=2, mode="fast")
    result = asyncio.run(generate(request, sd.build, sd.components))
    assert [plate.shape for plate in result.plates] == [(48, 90, 3)] * 2
    assert all(plate.dtype == np.uint8 for plate in result.plates)
    info = result.info
    assert (info["engine"], info["scheduler"], info["num_inference_steps"]) == ("diffusion-sd", "DPM++ 2M Karras", 20)
    assert (info["guidance_scale"], info["strength"], info["resolution"]) == (7.5, 1.0, [64, 64])
    assert set(info["timings_ms"]) == {"encode", "denoise", "decode", "total"}


def test_mask_repaints_the_background_and_a_rim_of_the_subject() -> None:
    image, alpha = subject_photo()
    conditioning = prepare_conditioning(image, alpha, SIZE, SIZE, 8)
    mask, subject = conditioning.mask[0, 0].numpy(), alpha == 255
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert mask[~subject].min() == 1 and mask[SIZE // 2, SIZE // 2] == 0
    assert 0 < mask[subject].mean() < 1  # the dilation reaches into the subject's edge
    assert conditioning.masked_image[0][:, mask == 1].abs().max() == 0
    edges = conditioning.edges[0, 0].numpy()
    assert edges.max() == 1 and edges[:4].max() == 0  # the subject's outline, nothing of the far background


def test_a_depth_controlnet_is_conditioned_on_two_planes_from_the_matte() -> None:
    image, alpha = subject_photo()
    conditioning = prepare_conditioning(image, alpha, SIZE, SIZE, 8)
    planes = conditioning.control_image("depth")[0].numpy()
    assert conditioning.control_image("canny") is conditioning.edges
    assert planes.shape == (3, SIZE, SIZE) and planes.min() >= 0.0 and planes.max() <= 1.0
    subject = cv2.resize(alpha, (SIZE, SIZE)) == 255
    far = cv2.dilate(subject.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    assert planes[0][cv2.erode(subject.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0].min() > 0.9
    assert planes[0][far].max() < 0.05
