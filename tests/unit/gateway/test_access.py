"""Who may call what: every operation of the API classified (no admin operation exists, the CLI is the admin
interface), keys refused on every keyed operation, revocation seen at once by every gateway, and keys looked up by
their keyed digest and compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

import httpx
from sqlalchemy import event

from gateway.admin import revoke
from gateway.app import create_app
from gateway.auth import KEY_PREFIX, hash_key
from gateway.settings import Settings
from tests.unit.gateway.conftest import auth, running_client, stub_resolver

OPEN_OPERATIONS = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # aggregates only: nothing per account
    ("GET", "/v1/outputs/{name}"),  # the signed URL is the credential
}
KEYED_OPERATIONS = {
    ("GET", "/v1/credits"),
    ("POST", "/v1/image/replace-background"),
    ("POST", "/v1/remove-background"),
    ("POST", "/v1/run"),
    ("GET", "/v1/predictions/{prediction_id}"),
    ("POST", "/v1/predictions/{prediction_id}/cancel"),
    ("POST", "/v1/bg-replace"),
    ("POST", "/v1.0/removebg"),
}
UNKNOWN_KEY = KEY_PREFIX + "x" * 43


async def test_every_operation_is_classified_and_each_keyed_one_refuses_bad_keys(client, make_key, settings) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = {(method.upper(), path): item[method] for path, item in spec["paths"].items() for method in item}
    assert set(operations) == OPEN_OPERATIONS | KEYED_OPERATIONS, "classify it, after deciding who may call it"
    documented_keyed = {operation for operation, description in operations.items() if description.get("security")}
    assert documented_keyed == KEYED_OPERATIONS  # the document says which operations take a key, and how
    revoked = await make_key(10)
    assert await revoke(settings, revoked[:10]) == 1
    presented: list[dict[str, str]] = [{}, auth(UNKNOWN_KEY), auth(revoked), {"x-api-key": revoked}, {"x-api-key": ""}]
    for method, path in sorted(KEYED_OPERATIONS):
        url = path.replace("{prediction_id}", "0" * 32)
        for headers in presented:
            response = await client.request(method, url, headers=headers)
            code = (
                response.json()["errors"][0]["code"] if path == "/v1.0/removebg" else response.json()["error"]["code"]
            )
            assert (response.status_code, code) == (403 if path == "/v1.0/removebg" else 401, "unauthorized"), url
            assert "x-remaining-credits" not in response.headers


async def test_a_revoked_key_is_refused_by_the_next_request_on_every_gateway(
    db_settings, db_make_key, pipelines
) -> None:
    key, other = await db_make_key(10), await db_make_key(10)
    first = create_app(db_settings, pipelines=pipelines, resolver=stub_resolver)
    second = create_app(db_settings, pipelines=pipelines, resolver=stub_resolver)
    async with running_client(first) as one, running_client(second) as two:
        for client in (one, two):
            assert (await client.get("/v1/credits", headers=auth(key))).status_code == 200
        assert await revoke(db_settings, key[:10]) == 1  # what `replate keys revoke` runs
        for client in (one, two):
            refused = await client.get("/v1/credits", headers=auth(key))
            assert refused.status_code == 401 and refused.json()["error"]["message"] == "unknown or revoked API key"
            assert (await client.get("/v1/credits", headers=auth(other))).status_code == 200


async def test_a_key_is_looked_up_by_its_keyed_digest_and_compared_in_constant_time(
    settings: Settings, make_key, pipelines, monkeypatch
) -> None:
    key = await make_key(10)
    compared: list[tuple[Any, Any]] = []
    compare_digest = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or compare_digest(a, b))
    app = create_app(settings, pipelines=pipelines, resolver=stub_resolver)
    async with running_client(app) as client:
        sent: list[str] = []
        event.listen(
            app.state.services.engine.sync_engine,
            "before_cursor_execute",
            lambda _conn, _cursor, statement, parameters, _context, _many: sent.append(f"{statement} {parameters}"),
        )
        assert (await client.get("/v1/credits", headers=auth(key))).status_code == 200
    digest = hash_key(key, app.state.services.api_key_secret)
    assert any(digest in text for text in sent) and not any(key in text for text in sent)
    assert (digest, digest) in compared


async def test_keys_in_a_query_string_are_not_accepted(client: httpx.AsyncClient, make_key) -> None:
    key = await make_key(10)
    for params in ({"api_key": key}, {"key": key}, {"x-api-key": key}, {"authorization": f"Bearer {key}"}):
        assert (await client.get("/v1/credits", params=params)).status_code == 401
