import pytest

from gateway.triton import TritonPipelines
from replate.errors import Unavailable


async def test_a_triton_that_is_down_is_unavailable() -> None:
    pipelines = TritonPipelines("127.0.0.1:1", timeout_s=5)
    try:
        assert await pipelines.is_ready() is False
        with pytest.raises(Unavailable):
            await pipelines.run("replace_background", b"\x89PNG", {})
    finally:
        await pipelines.close()
