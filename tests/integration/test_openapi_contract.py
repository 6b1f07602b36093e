"""`schemathesis run` against the served /openapi.json with a valid key: no 5xx, every response as documented.
Bounded (examples per operation, fixed seed) so that CI stays fast and reproducible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import GatewayThread

pytestmark = pytest.mark.slow
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


async def test_schemathesis_finds_no_server_error_or_schema_violation(gateway: GatewayThread, make_key) -> None:
    key = await make_key(10_000)
    schemathesis = Path(sys.executable).parent / "schemathesis"
    command = [
        str(schemathesis), "run", f"{gateway.url}/openapi.json",
        "--header", f"Authorization: Bearer {key}",
        "--checks", CHECKS,
        "--max-examples", "15",
        "--seed", "20261125",
        "--request-timeout", "60",
        "--generation-deterministic",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
