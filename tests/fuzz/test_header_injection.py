"""Header injection: request values that could reach response headers (x-request-id, Idempotency-Key, output
formats, output keys in URLs) carrying CR/LF or non-latin-1 text never add a header or split a response. Through
the ASGI app for values that JSON or a URL path can carry, and over a raw socket for header values, which only
the wire can carry as they were written."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.settings import Settings
from replate.imageio import encode_image
from tests.conftest import data_url
from tests.fakes import InProcessPipelines
from tests.fuzz.budget import fuzz_settings, tried
from tests.servers import GatewayThread
from tests.unit.gateway.conftest import auth, running_client

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
INJECTED = "x-injected"
HOSTILE_TEXT = st.lists(
    st.sampled_from(["\r", "\n", "\r\n", ":", " ", "é", "\u2028", "\x00", "png", "x-injected: 1", "%0d%0a"]),
    max_size=8,
).map(lambda pieces: "".join(pieces) + f"\r\n{INJECTED}: yes")


def assert_no_injection(headers: httpx.Headers) -> None:
    assert INJECTED not in {name.lower() for name in headers}
    for name, value in headers.items():
        assert "\r" not in value and "\n" not in value, (name, value)
    assert REQUEST_ID.match(headers["x-request-id"])


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_client(create_app(settings, pipelines=InProcessPipelines())) as client:
        yield client


@fuzz_settings(ci_examples=100)
@given(
    st.sampled_from(
        [
            ("/v1/image/replace-background", "output_format"),
            ("/v1/remove-background", "output_format"),
            ("/v1/remove-background", "channels"),
            ("/v1/run", "output_format"),
            ("/v1/run", "model"),
            ("/v1.0/removebg", "format"),
            ("/v1.0/removebg", "size"),
            ("/v1/bg-replace", "scheduler"),
        ]
    ),
    HOSTILE_TEXT,
)
async def test_body_fields_cannot_reach_response_headers(api, make_key, target, value: str) -> None:
    tried("headers: CR/LF and non-latin-1 in body fields that choose response headers")
    path, field = target
    key = await make_key(20)
    image = data_url(encode_image(np.zeros((8, 8, 3), np.uint8), "png"))
    valid_bodies = {
        "/v1/image/replace-background": {"image_url": image, "bg_color": "#ffffff"},
        "/v1/remove-background": {"image": image},
        "/v1/run": {"model": "remove-background", "image": image},
        "/v1.0/removebg": {"image_file_b64": image.partition(",")[2]},
        "/v1/bg-replace": {"image": image, "prompt": "a studio"},
    }
    response = await api.post(path, json=valid_bodies[path] | {field: value}, headers=auth(key))
    assert response.status_code < 500  # refused, or (a free-text diffusion option) run
    assert_no_injection(response.headers)


@fuzz_settings(ci_examples=100)
@given(HOSTILE_TEXT)
async def test_output_keys_in_urls_cannot_reach_response_headers(api, value: str) -> None:
    tried("headers: CR/LF and non-latin-1 in output URLs")
    response = await api.get(f"/v1/outputs/{quote(value, safe='')}.png?expires=1&sig={quote(value, safe='')}")
    assert response.status_code in (400, 403, 404, 410, 422)
    assert_no_injection(response.headers)


@fuzz_settings(ci_examples=100)
@given(st.text(max_size=80))
async def test_any_request_id_comes_back_well_formed(api, value: str) -> None:
    tried("headers: x-request-id of any text (in-process, latin-1 encodable)")
    encoded = value.encode("utf-8")  # as the client sent it; the server decodes header bytes as latin-1
    response = await api.get("/healthz", headers=[(b"x-request-id", encoded)])
    assert_no_injection(response.headers)
    sent = encoded.decode("latin-1")
    assert response.headers["x-request-id"] == sent if REQUEST_ID.match(sent) else response.headers["x-request-id"]


@pytest.fixture
def gateway(settings: Settings) -> Iterator[GatewayThread]:
    with GatewayThread(settings, pipelines=InProcessPipelines()) as running:
        yield running


def raw_get(port: int, header_lines: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: replate.test\r\n" + header_lines + b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = connection.recv(65536)
            if not data:
                break
            answer += data
        return answer


HEADER_VALUE_BYTES = st.one_of(
    st.binary(max_size=60), st.binary(max_size=20).map(lambda value: value + b"\r\nx-injected: yes")
).filter(lambda value: not value.startswith((b" ", b"\t")))


@fuzz_settings(ci_examples=100)
@given(st.sampled_from([b"x-request-id", b"idempotency-key", b"authorization", b"x-api-key"]), HEADER_VALUE_BYTES)
def test_raw_header_bytes_cannot_split_the_response(gateway, name: bytes, value: bytes) -> None:
    tried("headers: raw header bytes over a socket (CR, LF, NUL, high bytes)")
    answer = raw_get(gateway.port, name + b": " + value + b"\r\n")
    head = answer.partition(b"\r\n\r\n")[0]
    status, *lines = head.split(b"\r\n")
    assert status.startswith((b"HTTP/1.1 200", b"HTTP/1.1 400")), answer[:300]
    names = {line.partition(b":")[0].lower() for line in lines}
    assert not names & {b"x-injected", name} - {b"x-request-id"}
    request_ids = [line.partition(b": ")[2] for line in lines if line.lower().startswith(b"x-request-id:")]
    assert all(REQUEST_ID.match(request_id.decode("latin-1")) for request_id in request_ids)
