from __future__ import annotations

import pytest
import torch

from export.diffusion.components import (
    ControlNet,
    ImageEncoder,
    UNet,
    axis_sizes,
    example_inputs,
    load_components,
    load_ip_adapter_weights,
)
from export.diffusion.tiny import TinyModels, build_tiny

SIZES = axis_sizes(batch=2, height_px=64, width_px=96)


@pytest.fixture(scope="module", params=["sd", "sdxl"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return build_tiny(tmp_path_factory.mktemp(request.param), request.param)


def test_every_component_returns_the_contract_shapes(tiny: TinyModels) -> None:
    components = load_components(tiny.pipeline, controlnet_dir=tiny.controlnet, ip_adapter_dir=tiny.ip_adapter)
    sdxl = (tiny.pipeline / "text_encoder_2").is_dir()
    expected = {"diffusion_text_encoder", "diffusion_unet", "diffusion_controlnet", "diffusion_image_encoder"}
    expected |= {"diffusion_vae_encoder", "diffusion_vae_decoder"} | ({"diffusion_text_encoder_2"} if sdxl else set())
    assert set(components) == expected
    for component in components.values():
        outputs = component.run(example_inputs(component, SIZES))
        assert list(outputs) == list(component.outputs)
        for name, tensor in outputs.items():
            assert tuple(tensor.shape) == component.outputs[name].concrete(SIZES), (component.name, name)
    unet = components["diffusion_unet"]
    assert list(unet.inputs)[:3] == ["sample", "timestep", "encoder_hidden_states"]
    assert ("text_embeds" in unet.inputs) == sdxl and ("time_ids" in unet.inputs) == sdxl
    assert {"ip_tokens", "ip_scale", "mid_residual"} <= set(unet.inputs)
    assert unet.inputs["sample"].shape[1] == 9
    assert ("text_embeds" in components["diffusion_text_encoder_2"].outputs) if sdxl else True


def test_ip_scale_per_item_matches_diffusers_ip_adapter(tiny: TinyModels) -> None:
    """The per-item scale reproduces diffusers' own IP-Adapter processors at that scale, and 0 switches it off."""
    from diffusers import UNet2DConditionModel

    reference = UNet2DConditionModel.from_pretrained(tiny.pipeline, subfolder="unet", local_files_only=True)
    plain = UNet.load(tiny.pipeline)
    unet = UNet.load(tiny.pipeline, ip_adapter=tiny.ip_adapter)
    encoder = ImageEncoder.load(tiny.ip_adapter)
    reference._load_ip_adapter_weights([load_ip_adapter_weights(tiny.ip_adapter)], low_cpu_mem_usage=False)

    inputs = example_inputs(unet, SIZES)
    pixels = example_inputs(encoder, SIZES)["pixel_values"]
    with torch.no_grad():
        image_embeds = encoder.encoder(pixels).image_embeds
    inputs["ip_tokens"] = encoder.run({"pixel_values": pixels})["ip_tokens"]
    inputs["ip_scale"] = torch.tensor([0.0, 0.7])
    actual = unet.run(inputs)["noise_pred"]

    for processor in reference.attn_processors.values():
        if hasattr(processor, "scale"):
            processor.scale = [0.7]
    added = {key: inputs[key] for key in ("text_embeds", "time_ids") if key in inputs}
    with torch.no_grad():
        expected = reference(
            inputs["sample"],
            inputs["timestep"],
            inputs["encoder_hidden_states"],
            added_cond_kwargs={**added, "image_embeds": [image_embeds[:, None]]},
        ).sample
    without_adapter = plain.run(inputs)["noise_pred"]
    torch.testing.assert_close(actual[1], expected[1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(actual[0], without_adapter[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(actual[1], without_adapter[1], atol=1e-3)


def test_conditioning_scale_is_per_item(tiny: TinyModels) -> None:
    controlnet = ControlNet.load(tiny.controlnet)
    inputs = example_inputs(controlnet, SIZES)
    inputs["conditioning_scale"] = torch.tensor([0.0, 0.5])
    halved = controlnet.run(inputs)
    inputs["conditioning_scale"] = torch.tensor([1.0, 1.0])
    full = controlnet.run(inputs)
    for name in controlnet.outputs:
        assert not halved[name][0].any()
        torch.testing.assert_close(halved[name][1], 0.5 * full[name][1])
