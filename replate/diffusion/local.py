"""In-process components: onnxruntime sessions over a build folder's ONNX models (CLI, tests, no Triton)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from replate.errors import Unavailable


class LocalComponents:
    """`Components` over `<build>/<model>/1/model.onnx`; each call runs in a worker thread, so concurrent loops
    overlap their calls (without Triton's batching)."""

    def __init__(self, build_dir: Path, *, threads: int = 0) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see replate/triton_onnx.py
        self._sessions = {
            path.parent.parent.name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for path in sorted(build_dir.glob("diffusion_*/1/model.onnx"))
        }
        if not self._sessions:
            raise Unavailable(f"no diffusion_*/1/model.onnx under {build_dir}: run `python -m export.diffusion`")

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        try:
            session = self._sessions[model]
        except KeyError:
            raise Unavailable(f"the diffusion build has no {model} model") from None
        results = await asyncio.to_thread(session.run, list(outputs), dict(inputs))
        return dict(zip(outputs, results, strict=True))
