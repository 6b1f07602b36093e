"""No secret reaches a log. A realistic session runs through `replate gateway` (the container's entry point) at
REPLATE_LOG_LEVEL=debug, in front of the real tritonserver: keys made and revoked with the CLI, valid, invalid and
revoked keys in every place a client puts them (Authorization, x-api-key, a query string, gRPC metadata, a JSON
field), a replayed Idempotency-Key, predictions, signed output URLs fetched, tampered with and fed back as input.
Everything the gateway, the CLI and Triton wrote is then searched for each key, each key's stored digest, both
server secrets and every output URL's signature."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time

import grpc
import httpx
import pytest

from gateway.auth import hash_key
from gateway.proto.replate.v1 import replate_pb2 as pb
from gateway.proto.replate.v1 import replate_pb2_grpc
from gateway.settings import Settings
from gateway.tritonserver import TritonServer
from tests.conftest import data_url
from tests.integration.conftest import free_port
from tests.integration.test_gateway_command import replate_command, wait_ready

pytestmark = pytest.mark.slow


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Session:
    """The HTTP client side of the session: checks each status, so that the logs searched are those of the requests
    the test means, and keeps every signed URL it was handed."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=60)
        self.signed_urls: list[str] = []
        self.requests = 0

    def call(self, status: int, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)  # type: ignore[arg-type]
        self.requests += 1
        assert response.status_code == status, (method, path, response.status_code, response.text[:300])
        return response

    def keep(self, urls: list[str]) -> list[str]:
        assert urls and all("sig=" in url for url in urls), urls
        self.signed_urls.extend(urls)
        return urls

    @property
    def signatures(self) -> set[str]:
        return {httpx.URL(url).params["sig"] for url in self.signed_urls}


def run_session(session: Session, grpc_port: int, keys: dict[str, str], studio_png: bytes) -> None:
    a, b, revoked = keys["a"], keys["b"], keys["revoked"]
    typo, unknown = a[:-1] + ("x" if a[-1] != "x" else "y"), keys["unknown"]
    for headers in (bearer(a), {"x-api-key": b}, {"authorization": f"bearer {a}"}):
        session.call(200, "GET", "/v1/credits", headers=headers)
    for headers in (bearer(revoked), bearer(typo), {"x-api-key": unknown}, {"Authorization": f"Basic {a}"}):
        session.call(401, "GET", "/v1/credits", headers=headers)
    session.call(401, "GET", "/v1/credits", params={"api_key": a, "key": b})  # query strings carry no key

    body = {"image_url": data_url(studio_png), "bg_color": "#f4efe6"}
    once = {**bearer(a), "Idempotency-Key": "log-scan-1"}
    first = session.call(200, "POST", "/v1/image/replace-background", json=body, headers=once)
    replayed = session.call(200, "POST", "/v1/image/replace-background", json=body, headers=once)
    assert replayed.headers["idempotent-replayed"] == "true"
    [output] = session.keep(first.json()["outputs"])
    session.call(200, "GET", output)
    session.call(404, "GET", str(httpx.URL(output).copy_set_param("sig", "0" * 64)))
    fed_back = session.call(200, "POST", "/v1/remove-background", json={"image": output}, headers={"x-api-key": b})
    assert fed_back.content.startswith(b"\x89PNG")

    run = {"model": "remove-background", "image": data_url(studio_png)}
    prediction = session.call(201, "POST", "/v1/run", json=run, headers=bearer(b)).json()
    session.call(404, "GET", f"/v1/predictions/{prediction['id']}", headers=bearer(a))
    deadline = time.monotonic() + 60
    while prediction["status"] != "succeeded":
        assert prediction["status"] in ("starting", "processing") and time.monotonic() < deadline, prediction
        time.sleep(0.2)
        prediction = session.call(200, "GET", f"/v1/predictions/{prediction['id']}", headers=bearer(b)).json()
    for url in session.keep(prediction["output"]):
        session.call(200, "GET", url)

    session.call(200, "POST", "/v1.0/removebg", files={"image_file": studio_png}, headers={"X-Api-Key": a})
    session.call(403, "POST", "/v1.0/removebg", files={"image_file": studio_png}, headers={"X-Api-Key": typo})
    session.call(422, "POST", "/v1/remove-background", json={"image": a}, headers=bearer(a))  # a key pasted as image

    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = replate_pb2_grpc.ReplateStub(channel)
        stub.GetBalance(pb.GetBalanceRequest(), metadata=[("authorization", f"Bearer {a}")], timeout=30)
        stub.GetBalance(pb.GetBalanceRequest(), metadata=[("x-api-key", b)], timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetBalance(pb.GetBalanceRequest(), metadata=[("x-api-key", revoked)], timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_no_key_secret_or_signature_reaches_any_log(
    db_settings: Settings, triton: TritonServer, studio_png: bytes
) -> None:
    api_key_secret, url_signing_secret = secrets.token_hex(32), secrets.token_hex(32)
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "REPLATE_DATA_DIR": str(db_settings.data_dir),
        "REPLATE_DATABASE_URL": db_settings.database_url,
        "REPLATE_TRITON_URL": triton.grpc_url,
        "REPLATE_HTTP_PORT": str(http_port),
        "REPLATE_GRPC_PORT": str(grpc_port),
        "REPLATE_API_KEY_SECRET": api_key_secret,
        "REPLATE_URL_SIGNING_SECRET": url_signing_secret,
        "REPLATE_URL_ALLOWED_HOSTS": '["127.0.0.1"]',  # so that an output URL can come back as an input
        "REPLATE_LOG_LEVEL": "debug",
    }
    cli_logs: list[str] = []

    def cli(*argv: str) -> str:
        done = subprocess.run(replate_command(["replate", *argv]), env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        cli_logs.append(done.stderr)
        return done.stdout

    keys = {name: cli("keys", "create", "--name", name, "--credits", "100").split()[-1] for name in ("a", "b")}
    keys["revoked"] = cli("keys", "create", "--name", "c", "--credits", "100").split()[-1]
    cli("keys", "revoke", keys["revoked"][:10])
    keys["unknown"] = "rp_" + secrets.token_urlsafe(32)

    log_path = db_settings.data_dir / "gateway.log"  # a file, not a pipe: a full pipe would block the gateway
    with log_path.open("wb") as log_file:
        gateway = subprocess.Popen(
            replate_command(["replate", "gateway"]), env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(f"http://127.0.0.1:{http_port}", gateway)
            session = Session(f"http://127.0.0.1:{http_port}")
            with session.client:
                run_session(session, grpc_port, keys, studio_png)
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(timeout=60)
    gateway_log = log_path.read_text(errors="replace")
    assert gateway.returncode == 0, gateway_log[-3000:]

    assert gateway_log.count('"logger": "replate.access"') >= session.requests + 3, "the session was not logged"
    logs = {"gateway": gateway_log, "cli": "".join(cli_logs), "triton": triton.log_path.read_text(errors="replace")}
    forbidden = {"api key secret": api_key_secret, "url signing secret": url_signing_secret}
    for name, key in keys.items():
        forbidden[f"key {name}"] = key
        forbidden[f"digest of key {name}"] = hash_key(key, api_key_secret.encode())
    forbidden |= {f"signature {sig[:8]}…": sig for sig in session.signatures}
    leaks = [
        f"{what} in the {where} log"
        for what, value in forbidden.items()
        for where, text in logs.items()
        if value in text
    ]
    assert not leaks, leaks
