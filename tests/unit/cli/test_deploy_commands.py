"""What the container images and the chart run: `replate keys bootstrap` (the admin key, once) and `replate gateway`."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from gateway.auth import api_key_secret, authenticate
from gateway.db import create_engine, create_sessionmaker
from gateway.settings import Settings
from replate.cli import main
from tests.unit.cli.conftest import run

KEY = "rp_" + secrets.token_urlsafe(32)


async def account_of(key: str) -> int:
    settings = Settings()
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await authenticate(session, key, api_key_secret(settings))
    finally:
        await engine.dispose()


def test_bootstrap_registers_the_chosen_key_once(
    environment: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main(["db", "upgrade"])
    monkeypatch.setenv("REPLATE_BOOTSTRAP_KEY", KEY)
    code, out = run(capsys, "keys", "bootstrap", "--name", "admin", "--credits", "1000")
    assert code == 0 and "registered the key of REPLATE_BOOTSTRAP_KEY for admin with 1000 credits" in out
    assert KEY not in out
    asyncio.run(account_of(KEY))  # the key authenticates
    assert run(capsys, "credits", "grant", "--name", "admin", "--credits", "1")[1] == "admin: 1001 credits available\n"
    # Every upgrade runs it again: nothing changes, no credits are added.
    assert run(capsys, "keys", "bootstrap", "--name", "admin", "--credits", "1000") == (
        0,
        "the key of REPLATE_BOOTSTRAP_KEY is registered already: nothing changed\n",
    )
    assert run(capsys, "credits", "grant", "--name", "admin", "--credits", "1")[1] == "admin: 1002 credits available\n"
    # A revoked bootstrap key stays revoked.
    run(capsys, "keys", "revoke", KEY[:10])
    assert "registered already" in run(capsys, "keys", "bootstrap", "--name", "admin", "--credits", "1000")[1]
    assert "revoked" in run(capsys, "keys", "list")[1]


@pytest.mark.parametrize(("key", "message"), [("", "is empty"), ("rp_short", "at least 43"), ("x" * 50, "rp_")])
def test_bootstrap_refuses_a_missing_or_weak_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key: str, message: str
) -> None:
    monkeypatch.setenv("REPLATE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REPLATE_DATABASE_URL", raising=False)
    main(["db", "upgrade"])
    monkeypatch.setenv("REPLATE_BOOTSTRAP_KEY", key)
    assert main(["keys", "bootstrap", "--name", "admin"]) == 1
    assert message in capsys.readouterr().err
    assert main(["keys", "list"]) == 0 and capsys.readouterr().out == ""


def test_gateway_needs_an_external_triton(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPLATE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REPLATE_TRITON_URL", raising=False)
    assert main(["gateway"]) == 1
    assert "`replate gateway` needs an external Triton: set REPLATE_TRITON_URL" in capsys.readouterr().err
