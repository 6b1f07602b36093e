"""The operator commands: `replate db upgrade`, `keys create|list|revoke`, `credits grant`, on both databases."""

from __future__ import annotations

import pytest

from replate.cli import main
from tests.unit.cli.conftest import run


def test_operator_commands(environment: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "upgrade") == (0, "database is up to date\n")
    code, out = run(capsys, "keys", "create", "--name", "acme", "--credits", "250")
    assert code == 0 and out.startswith("API key: rp_")
    key = out.split()[-1]
    code, out = run(capsys, "keys", "list")
    assert code == 0 and f"{key[:10]}…  account=acme" in out and "active" in out and key not in out
    assert run(capsys, "credits", "grant", "--name", "acme", "--credits", "50") == (0, "acme: 300 credits available\n")
    assert run(capsys, "keys", "revoke", key[:10]) == (0, "revoked 1 key(s)\n")
    assert "revoked" in run(capsys, "keys", "list")[1]
    assert run(capsys, "keys", "revoke", key[:10])[0] == 1


def test_granting_to_an_unknown_account_says_so(environment: None, capsys: pytest.CaptureFixture[str]) -> None:
    main(["db", "upgrade"])
    code = main(["credits", "grant", "--name", "nobody", "--credits", "5"])
    captured = capsys.readouterr()
    assert code == 1 and "no account named 'nobody'" in captured.err
