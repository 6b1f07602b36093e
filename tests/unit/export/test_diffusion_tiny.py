from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from export.diffusion.tiny import IP_ADAPTER_WEIGHTS, build_tiny


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_tiny_models_load_as_diffusers_pipelines(family: str, tmp_path: Path) -> None:
    from diffusers import ControlNetModel, StableDiffusionControlNetInpaintPipeline
    from diffusers import StableDiffusionXLControlNetInpaintPipeline as XLPipeline

    started = time.monotonic()
    models = build_tiny(tmp_path, family)  # type: ignore[arg-type]
    assert time.monotonic() - started < 10

    controlnet = ControlNetModel.from_pretrained(models.controlnet, local_files_only=True)
    pipeline_class = XLPipeline if family == "sdxl" else StableDiffusionControlNetInpaintPipeline
    pipeline = pipeline_class.from_pretrained(models.pipeline, controlnet=controlnet, local_files_only=True)
    pipeline.load_ip_adapter(str(models.ip_adapter), subfolder="", weight_name=IP_ADAPTER_WEIGHTS)

    assert pipeline.unet.config.in_channels == 9
    assert pipeline.vae_scale_factor == 8
    assert pipeline.tokenizer.model_max_length == 77
    assert pipeline.tokenizer("a photo of the beach").input_ids[1] == pipeline.tokenizer.get_vocab()["a</w>"]
    assert (models.pipeline / "tokenizer" / "vocab.json").is_file()
    assert (models.pipeline / "tokenizer" / "merges.txt").is_file()
    assert json.loads((models.controlnet / "replate.json").read_text()) == {"kind": "canny"}
    assert (family == "sdxl") == (pipeline.unet.config.addition_embed_type == "text_time")
    if family == "sdxl":
        assert pipeline.tokenizer_2.model_max_length == 77
        assert pipeline.unet.config.cross_attention_dim == 64


def test_an_unknown_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="family"):
        build_tiny(tmp_path, "sd3")  # type: ignore[arg-type]
