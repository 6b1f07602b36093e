"""Generated scenes: the diffusion stage's denoising loop, run over the contract's components (docs/diffusion.md).

    build = load_build(Path("build"))                      # manifest, tokenizers, scheduler config
    request = SceneRequest(image=rgb, alpha=alpha, prompt="a sunlit beach", seed=7)
    result = await generate(request, build, LocalComponents(build.path))   # or BLS components in Triton

`generate` is written once over the async `Components` seam; `replate.diffusion.triton_model` serves it as the
`scene_diffusion` Triton model, `replate.diffusion.local` runs it in-process on onnxruntime.
"""

from __future__ import annotations

from replate.diffusion.build import Build, Manifest, load_build
from replate.diffusion.components import Components
from replate.diffusion.local import LocalComponents
from replate.diffusion.loop import GeneratedScenes, generate
from replate.diffusion.request import MODES, SceneRequest, scene_request_from_params, working_size
from replate.diffusion.schedulers import DEFAULT_SCHEDULER, SCHEDULERS, make_scheduler, scheduler_name

__all__ = [
    "DEFAULT_SCHEDULER",
    "MODES",
    "SCHEDULERS",
    "Build",
    "Components",
    "GeneratedScenes",
    "LocalComponents",
    "Manifest",
    "SceneRequest",
    "generate",
    "load_build",
    "make_scheduler",
    "scene_request_from_params",
    "scheduler_name",
    "working_size",
]
