from __future__ import annotations

import numpy as np
import pytest

from replate.diffusion import MODES, SCHEDULERS, SceneRequest, scene_request_from_params, scheduler_name, working_size
from replate.errors import InvalidRequest


def _request(**params: object) -> SceneRequest:
    image, alpha = np.zeros((40, 60, 3), np.uint8), np.zeros((40, 60), np.uint8)
    return SceneRequest(image=image, alpha=alpha, **{"prompt": "a beach", **params})


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("DDIM", "DDIM"),
        ("ddim", "DDIM"),
        ("Euler", "Euler"),
        ("Euler a", "Euler a"),
        ("euler_a", "Euler a"),
        ("EULER_ANCESTRAL", "Euler a"),
        ("DPM++ 2M", "DPM++ 2M"),
        ("dpmpp_2m", "DPM++ 2M"),
        ("DPM++ 2M Karras", "DPM++ 2M Karras"),
        ("dpm++ 2m karras", "DPM++ 2M Karras"),
        ("dpmpp-2m-karras", "DPM++ 2M Karras"),
        ("UniPC", "UniPC"),
        ("unipc", "UniPC"),
    ],
)
def test_scheduler_names_as_clients_send_them(spelling: str, name: str) -> None:
    assert scheduler_name(spelling) == name
    assert _request(scheduler=spelling).scheduler == name


def test_unknown_scheduler_lists_the_choices() -> None:
    with pytest.raises(InvalidRequest, match=r"scheduler must be one of DDIM, .*UniPC, got 'k_dpm_fast'"):
        _request(scheduler="k_dpm_fast")
    assert {"DDIM", "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "UniPC"} <= set(SCHEDULERS)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"num_inference_steps": 19}, "num_inference_steps"),
        ({"num_inference_steps": 101}, "num_inference_steps"),
        ({"num_inference_steps": 30.5}, "num_inference_steps"),
        ({"guidance_scale": 0.5}, "guidance_scale"),
        ({"guidance_scale": 25.5}, "guidance_scale"),
        ({"guidance_scale": "7"}, "guidance_scale"),
        ({"strength": -0.1}, "strength"),
        ({"strength": 1.1}, "strength"),
        ({"cn_weight": 2}, "cn_weight"),
        ({"ip_adapter_weight": -1}, "ip_adapter_weight"),
        ({"num_outputs": 0}, "num_outputs"),
        ({"num_outputs": 5}, "num_outputs"),
        ({"num_outputs": True}, "num_outputs"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"mode": "turbo"}, "mode"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"negative_prompt": ["a"]}, "negative_prompt"),
    ],
)
def test_invalid_parameters_name_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest, match=rf"^{field}"):
        _request(**params)


def test_images_are_checked() -> None:
    with pytest.raises(InvalidRequest, match="image must be uint8"):
        SceneRequest(image=np.zeros((4, 4), np.uint8), alpha=np.zeros((4, 4), np.uint8), prompt="x")
    with pytest.raises(InvalidRequest, match="alpha must be uint8"):
        SceneRequest(image=np.zeros((4, 4, 3), np.uint8), alpha=np.zeros((4, 5), np.uint8), prompt="x")
    with pytest.raises(InvalidRequest, match="reference must be uint8"):
        _request(reference=np.zeros((4, 4, 3), np.float32))


def test_a_reference_alone_is_enough() -> None:
    assert _request(prompt="", reference=np.zeros((8, 8, 3), np.uint8)).prompt == ""


def test_mode_presets_and_explicit_values_win() -> None:
    assert [_request(mode=mode).steps for mode in ("fast", "balanced", "quality")] == [20, 30, 50]
    assert _request(mode="fast", num_inference_steps=40).steps == 40
    fast, quality = (_request(mode=mode).working_size(512) for mode in ("fast", "quality"))
    assert fast[0] * fast[1] < quality[0] * quality[1] <= 512**2
    assert MODES["quality"].area_fraction == 1.0


@pytest.mark.parametrize(
    ("width", "height", "max_area", "expected"),
    [
        (512, 512, 512**2, (512, 512)),
        (4000, 3000, 512**2, (576, 384)),
        (3000, 4000, 1024**2, (832, 1152)),
        (100, 80, 512**2, (512, 448)),
        (5000, 50, 512**2, (4096, 64)),
        (50, 5000, 64**2, (64, 64)),
    ],
)
def test_working_size(width: int, height: int, max_area: int, expected: tuple[int, int]) -> None:
    got = working_size(width, height, max_area)
    assert got == expected
    assert got[0] % 64 == 0 and got[1] % 64 == 0
    assert got[0] * got[1] <= max(max_area, 64 * 64)


def test_params_refuse_unknown_keys() -> None:
    image, alpha = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    request = scene_request_from_params(image, alpha, None, {"prompt": "x", "num_outputs": 2, "mode": "fast"})
    assert (request.num_outputs, request.mode) == (2, "fast")
    with pytest.raises(InvalidRequest, match="unknown parameters: image, steps"):
        scene_request_from_params(image, alpha, None, {"prompt": "x", "steps": 3, "image": 1})
    with pytest.raises(InvalidRequest, match="image and alpha are required"):
        scene_request_from_params(None, alpha, None, {"prompt": "x"})
