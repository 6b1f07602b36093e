"""`schemathesis run` against the served /openapi.json with a valid key: no 5xx, every response as documented.
Bounded (examples per operation, fixed seed) so that CI stays fast and reproducible: the stateless phases, then the
stateful phase, which follows the document's links (a submitted prediction polled and canceled, in any order)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import GatewayThread

pytestmark = pytest.mark.slow
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,ignored_auth"
"""ignored_auth: after a 2xx, the same request without a key and with a wrong one must be refused."""
STATEFUL_CHECKS = f"{CHECKS},ensure_resource_availability,use_after_free"


def schemathesis(
    gateway: GatewayThread, key: str, *options: str, hooks: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{gateway.url}/openapi.json",
        "--header", f"Authorization: Bearer {key}",
        "--header", f"x-api-key: {key}",  # both documented schemes, so that neither is generated
        "--seed", "20261125",
        "--request-timeout", "60",
        "--generation-deterministic",
        *options,
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": hooks} if hooks else None
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


async def test_schemathesis_finds_no_server_error_or_schema_violation(gateway: GatewayThread, make_key) -> None:
    key = await make_key(10_000)
    result = schemathesis(
        gateway, key, "--phases", "examples,coverage,fuzzing", "--checks", CHECKS, "--max-examples", "15"
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


async def test_schemathesis_stateful_run_follows_the_links_without_a_server_error(
    gateway: GatewayThread, make_key
) -> None:
    key = await make_key(10_000)
    result = schemathesis(
        gateway,
        key,
        *("--phases", "stateful", "--checks", STATEFUL_CHECKS, "--max-examples", "20"),
        hooks="tests.integration.schemathesis_hooks",
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    links_followed = re.search(r"API Links:\s+(\d+) covered", result.stdout)
    assert links_followed and int(links_followed[1]) >= 3, result.stdout[-3000:]  # not a run of 422s
