"""Client scheduler names -> diffusers schedulers built from the build folder's `scheduler_config.json`.

Clients spell names the way web UIs show them ("DPM++ 2M Karras", "Euler a") or in snake_case
("dpmpp_2m_karras", "euler_a"); both resolve, case-insensitively, to one display name in `SCHEDULERS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from replate.errors import InvalidRequest

DEFAULT_SCHEDULER = "DPM++ 2M Karras"


@dataclass(frozen=True)
class SchedulerChoice:
    """A diffusers scheduler class and the config values that make it the named sampler."""

    cls: type[SchedulerMixin]
    overrides: dict[str, Any] = field(default_factory=dict)


SCHEDULERS: dict[str, SchedulerChoice] = {
    "DDIM": SchedulerChoice(DDIMScheduler),
    "DDPM": SchedulerChoice(DDPMScheduler),
    "PNDM": SchedulerChoice(PNDMScheduler, {"skip_prk_steps": True}),
    "LMS": SchedulerChoice(LMSDiscreteScheduler),
    "Euler": SchedulerChoice(EulerDiscreteScheduler),
    "Euler a": SchedulerChoice(EulerAncestralDiscreteScheduler),
    "Heun": SchedulerChoice(HeunDiscreteScheduler),
    "DPM++ 2M": SchedulerChoice(DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ 2M Karras": SchedulerChoice(
        DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}
    ),
    "DPM++ 2M SDE": SchedulerChoice(
        DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}
    ),
    "DPM++ 2M SDE Karras": SchedulerChoice(
        DPMSolverMultistepScheduler,
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "UniPC": SchedulerChoice(UniPCMultistepScheduler),
}
"""Display name -> scheduler; the display name is what `info` reports."""

_ALIASES = {"euler_ancestral": "euler_a", "k_euler": "euler", "k_euler_a": "euler_a", "lms_discrete": "lms"}


def _key(name: str) -> str:
    """ "DPM++ 2M Karras", "dpmpp-2m-karras" and "dpmpp_2m_karras" all become "dpmpp_2m_karras"."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower().replace("++", "pp"))
    return _ALIASES.get(key, key)


_BY_KEY = {_key(name): name for name in SCHEDULERS}


def scheduler_name(name: str) -> str:
    """The display name for a client's spelling; InvalidRequest naming `scheduler` and the choices otherwise."""
    try:
        return _BY_KEY[_key(name)]
    except KeyError:
        choices = ", ".join(SCHEDULERS)
        raise InvalidRequest(f"scheduler must be one of {choices}, got {name!r}") from None


def make_scheduler(name: str, config: dict[str, Any]) -> SchedulerMixin:
    """A fresh scheduler (they are stateful: one per request) for `name`, from the model's scheduler config."""
    choice = SCHEDULERS[scheduler_name(name)]
    return choice.cls.from_config(config, **choice.overrides)
