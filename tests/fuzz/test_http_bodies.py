"""Hostile HTTP bodies against the gateway: JSON bombs, oversized bodies (declared or chunked), multipart and form
floods, random JSON and random bytes. Each ends in a 4xx with a code, refused before parsing where the test says
so, and charges nothing. In-process through httpx's ASGI transport, and over a real socket to uvicorn where the
wire matters (a Content-Length the client never sends, chunked transfer encoding)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.app import create_app, max_body_bytes
from gateway.errors import MAX_PROBLEMS_LISTED
from gateway.routes._common import MAX_JSON_SEPARATORS
from gateway.settings import Settings
from tests.fakes import InProcessPipelines
from tests.fuzz.budget import fuzz_settings, tried
from tests.servers import GatewayThread
from tests.unit.gateway.conftest import auth, running_client, stub_resolver

JSON_PATHS = ("/v1/image/replace-background", "/v1/remove-background", "/v1/run", "/v1/bg-replace", "/v1.0/removebg")
BOMB_BYTES = 8_000_000
JSON_BOMBS = {
    "nested arrays": b"[" * BOMB_BYTES,
    "nested objects": b'{"a":' * (BOMB_BYTES // 5),
    "many keys": b"{" + b",".join(b'"k%d":0' % index for index in range(BOMB_BYTES // 12)) + b"}",
    "long array": b'{"image":"x","seed":[' + b"0," * (BOMB_BYTES // 2) + b"0]}",
}
CREDITS = 100


def error_code(response: httpx.Response) -> str:
    """The machine code of an error in our shape or remove.bg's."""
    body = response.json()
    return body["error"]["code"] if "error" in body else body["errors"][0]["code"]


def assert_refused(response: httpx.Response, *statuses: int) -> str:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers.get("x-remaining-credits") in (None, str(CREDITS))  # nothing held, nothing charged
    return error_code(response)


@pytest.fixture
def pipelines() -> InProcessPipelines:
    return InProcessPipelines()


@pytest.fixture
async def api(settings: Settings, pipelines: InProcessPipelines) -> AsyncIterator[httpx.AsyncClient]:
    async with running_client(create_app(settings, pipelines=pipelines, resolver=stub_resolver)) as client:
        yield client


@pytest.fixture
async def key(make_key) -> str:
    return await make_key(CREDITS)


@pytest.mark.parametrize("bomb", sorted(JSON_BOMBS))
@pytest.mark.parametrize("path", JSON_PATHS)
async def test_json_bombs_are_refused_before_parsing(api, key, pipelines, path: str, bomb: str) -> None:
    tried("HTTP: JSON bombs (8 MB: nesting, keys, array items)")
    headers = auth(key) | {"content-type": "application/json"}
    response = await api.post(path, content=JSON_BOMBS[bomb], headers=headers)
    assert assert_refused(response, 400, 422) == "invalid_request"
    assert f"at most {MAX_JSON_SEPARATORS}" in response.text
    assert pipelines.calls == []


async def test_a_body_just_under_the_separator_limit_is_parsed_and_answered(api, key) -> None:
    keys = MAX_JSON_SEPARATORS // 2 - 1
    body = b"{" + b",".join(b'"k%d":0' % index for index in range(keys)) + b"}"
    response = await api.post(JSON_PATHS[0], content=body, headers=auth(key) | {"content-type": "application/json"})
    assert assert_refused(response, 422) == "invalid_request"
    assert f"and {keys + 1 - MAX_PROBLEMS_LISTED} more problems" in response.text  # every key, and image_url


@pytest.fixture
def small_limit_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_image_bytes": 1000})


@pytest.fixture
async def small_api(small_limit_settings: Settings, pipelines: InProcessPipelines) -> AsyncIterator[httpx.AsyncClient]:
    async with running_client(create_app(small_limit_settings, pipelines=pipelines)) as client:
        yield client


@pytest.mark.parametrize("path", JSON_PATHS)
async def test_a_declared_oversize_body_is_413_in_our_shape(small_api, small_limit_settings, key, path) -> None:
    tried("HTTP: oversized bodies (declared, chunked, raw socket)")
    body = b'{"image": "' + b"A" * max_body_bytes(small_limit_settings) + b'"}'
    response = await small_api.post(path, content=body, headers=auth(key) | {"content-type": "application/json"})
    assert assert_refused(response, 413, 400) == "image_too_large" and "request body is over" in response.text
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("path", JSON_PATHS)
async def test_a_chunked_oversize_body_is_413(small_api, small_limit_settings, key, pipelines, path) -> None:
    tried("HTTP: oversized bodies (declared, chunked, raw socket)")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"image": "'
        for _ in range(max_body_bytes(small_limit_settings) // 4096 + 2):
            yield b"A" * 4096

    response = await small_api.post(path, content=chunks(), headers=auth(key) | {"content-type": "application/json"})
    assert assert_refused(response, 413, 400) == "image_too_large" and "request body is over" in response.text
    assert pipelines.calls == []


@pytest.fixture
def gateway(small_limit_settings: Settings) -> Iterator[GatewayThread]:
    with GatewayThread(small_limit_settings, pipelines=InProcessPipelines()) as running:
        yield running


def raw_exchange(port: int, head: bytes, body_chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a request head and then body chunks until the server answers or stops reading; -> (bytes sent, the
    start of the answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        sent = 0
        try:
            for chunk in body_chunks:
                connection.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server answered and closed while we were still sending: what we test for
            pass
        return sent, connection.recv(4096)


def request_head(path: str, key: str, framing: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: replate.test\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


def test_a_huge_content_length_is_answered_without_reading_the_body(gateway, key) -> None:
    tried("HTTP: oversized bodies (declared, chunked, raw socket)")
    head = request_head("/v1/image/replace-background", key, "Content-Length: 1000000000000")
    sent, answer = raw_exchange(gateway.port, head, iter([b"{"]))
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413") and sent == 1
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "image_too_large"


def test_a_chunked_body_past_the_limit_is_413(gateway, small_limit_settings, key) -> None:
    tried("HTTP: oversized bodies (declared, chunked, raw socket)")
    chunk = b"A" * 65536
    chunks = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(max_body_bytes(small_limit_settings) // 65536 + 4))
    head = request_head("/v1/image/replace-background", key, "Transfer-Encoding: chunked")
    _, answer = raw_exchange(gateway.port, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413") and b'"code":"image_too_large"' in answer


def multipart(parts: list[tuple[str, bytes]], boundary: str = "fuzzboundary") -> tuple[bytes, dict[str, str]]:
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n\r\n'.encode()
        + data
        + b"\r\n"
        for name, data in parts
    )
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.parametrize(
    ("path", "parts", "status", "code"),
    [
        ("/v1/remove-background", [("file", b"\x89PNG" + b"\0" * 20_000)], 413, "image_too_large"),
        ("/v1/remove-background", [(f"f{index}", b"x") for index in range(500)], 400, "invalid_request"),
        ("/v1/remove-background", [("file", b"x"), ("file", b"y")], 400, "invalid_request"),
        ("/v1.0/removebg", [("image_file", b"\x89PNG" + b"\0" * 20_000)], 400, "image_too_large"),
        ("/v1.0/removebg", [(f"f{index}", b"x") for index in range(500)], 400, "invalid_request"),
    ],
    ids=["file over the image limit", "500 parts", "two files", "remove.bg file over the limit", "remove.bg parts"],
)
async def test_multipart_floods_are_refused(api, settings, key, pipelines, path, parts, status, code) -> None:
    tried("HTTP: multipart and form floods")
    small = settings.model_copy(update={"max_image_bytes": 10_000})
    body, headers = multipart(parts)
    async with running_client(create_app(small, pipelines=pipelines)) as client:
        response = await client.post(path, content=body, headers=auth(key) | headers)
    assert assert_refused(response, status) == code
    assert pipelines.calls == []


async def test_a_urlencoded_form_of_a_million_fields_is_refused(api, key, pipelines) -> None:
    tried("HTTP: multipart and form floods")
    body = b"&".join(b"f%d=x" % index for index in range(1_000_000))
    headers = auth(key) | {"content-type": "application/x-www-form-urlencoded"}
    response = await api.post("/v1.0/removebg", content=body, headers=headers)
    assert assert_refused(response, 400) == "invalid_request"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
FIELD_NAMES = (
    "image",
    "image_url",
    "bg_color",
    "scene_prompt",
    "num_outputs",
    "seed",
    "model",
    "output_format",
    "channels",
    "samples",
    "prompt",
    "harmonize",
    "image_file_b64",
    "size",
    "format",
    "crop",
    "scale",
)


@fuzz_settings(ci_examples=300)
@given(
    st.sampled_from(JSON_PATHS),
    st.one_of(JSON_VALUES, st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=8)),
)
async def test_random_json_is_answered_with_a_code(api, key, path: str, document: object) -> None:
    tried("HTTP: random JSON documents on every JSON endpoint")
    body = json.dumps(document, allow_nan=True).encode()
    response = await api.post(path, content=body, headers=auth(key) | {"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert error_code(response)


@fuzz_settings(ci_examples=200)
@given(
    st.sampled_from(JSON_PATHS),
    st.sampled_from(
        (
            "application/json",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data",
            "",
        )
    ),
    st.binary(max_size=300),
)
async def test_random_bytes_are_answered_with_a_code(api, key, path: str, content_type: str, body: bytes) -> None:
    tried("HTTP: random bytes under each content type")
    response = await api.post(path, content=body, headers=auth(key) | {"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert error_code(response)
