"""`replate.client` without a server: the retry policy, error parsing, and what goes over the wire on a retry
(httpx's MockTransport). Against the real gateway: tests/integration/test_client.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from replate.client import ApiError, Client, RetryPolicy


def answer(status: int, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", "http://replate.test/"), **kwargs)


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=3, max_delay_s=10)
    assert policy.delay_s(0, answer(503, {"Retry-After": "2"})) == 2
    assert policy.delay_s(0, answer(429, {"Retry-After": "0"})) == 0
    assert policy.delay_s(0, answer(503, {"Retry-After": "600"})) == 10
    in_5_s = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    assert 3 < policy.delay_s(1, answer(503, {"Retry-After": in_5_s})) <= 5


def test_backoff_grows_with_jitter_and_stops() -> None:
    policy = RetryPolicy(max_retries=4, initial_delay_s=1, max_delay_s=5)
    lost = httpx.ReadError("reset")
    for retry, ceiling in enumerate([1, 2, 4, 5]):
        delays = {policy.delay_s(retry, lost) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays) and len(delays) > 1
    assert policy.delay_s(4, lost) is None
    assert policy.delay_s(0, answer(503)) is not None, "a 503 without Retry-After backs off"
    for status in (200, 400, 401, 406, 422, 500, 504):
        assert policy.delay_s(0, answer(status)) is None


def test_errors_are_read_from_both_shapes() -> None:
    native = answer(
        406,
        {"x-remaining-credits": "3", "x-request-id": "abc"},
        json={"error": {"code": "insufficient_credits", "message": "Not enough credits"}},
    )
    error = ApiError.from_response(native)
    assert (error.status, error.code, error.message, error.remaining_credits, error.request_id) == (
        406, "insufficient_credits", "Not enough credits", 3, "abc",
    )  # fmt: skip
    shaped_as_removebg = {"errors": [{"title": "no credits", "code": "insufficient_credits"}]}
    removebg = ApiError.from_response(answer(402, json=shaped_as_removebg))
    assert (removebg.code, removebg.message) == ("insufficient_credits", "no credits")
    proxy = ApiError.from_response(answer(502, text="<html>bad gateway</html>"))
    assert (proxy.status, proxy.code) == (502, "http_error")


def test_every_attempt_of_a_call_is_the_same_request() -> None:
    """An upload retried after a 503 carries the same Idempotency-Key and the very same bytes (a fresh multipart
    boundary would make the server refuse the retry as another request with `idempotency_key_reused`)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) < 3:
            overloaded = {"error": {"code": "overloaded", "message": "at capacity"}}
            return httpx.Response(503, headers={"Retry-After": "0"}, json=overloaded)
        return httpx.Response(200, content=b"png", headers={"content-type": "image/png", "x-credits-charged": "1"})

    with Client("http://replate.test", "rp_key", transport=httpx.MockTransport(handler)) as client:
        result = client.remove_background(b"image bytes")
        client.remove_background(b"image bytes")
    first, second, third, next_call = seen
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == third.headers["idempotency-key"]
    assert first.content == second.content == third.content and b"image bytes" in first.content
    assert next_call.headers["idempotency-key"] != first.headers["idempotency-key"], "a new call, a new key"
    assert result.image == b"png" and result.credits_charged == 1


def test_reads_carry_no_idempotency_key_and_downloads_no_api_key(tmp_path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/credits":
            return httpx.Response(200, json={"balance": 5, "held": 1, "available": 4})
        return httpx.Response(200, content=b"x" * 100_000)

    with Client("http://replate.test", "rp_key", transport=httpx.MockTransport(handler)) as client:
        assert client.credits().available == 4
        assert client.download("https://bucket.example/out.png?sig=1", tmp_path / "out.png") == 100_000
    credits, download = seen
    assert credits.headers["authorization"] == "Bearer rp_key" and "idempotency-key" not in credits.headers
    assert "authorization" not in download.headers, "the key never goes to an output URL's host"


def test_a_key_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLATE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="REPLATE_API_KEY"):
        Client("http://replate.test")
    monkeypatch.setenv("REPLATE_API_KEY", "rp_from_env")
    Client("http://replate.test").close()


def test_replace_background_uploads_local_photos_as_file_parts() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(422, json={"error": {"code": "invalid_request", "message": "seen"}})

    with Client("http://replate.test", "rp_key", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ApiError):
            client.replace_background(
                b"photo bytes", scene_image="https://example.com/beach.jpg", seed=7, harmonize=0.5
            )
        with pytest.raises(ApiError):
            client.replace_background("https://example.com/shoe.jpg", bg_color="#ffffff", preserve_shadow=True)
    upload, urls_only = seen
    assert upload.headers["content-type"].startswith("multipart/form-data")
    parts = upload.content.split(b"--" + upload.headers["content-type"].split("boundary=")[1].encode())
    named = {
        part.split(b'name="')[1].split(b'"')[0]: part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n") for part in parts[1:-1]
    }
    assert named == {
        b"image": b"photo bytes",
        b"scene_image_url": b"https://example.com/beach.jpg",
        b"seed": b"7",
        b"harmonize": b"0.5",
    }
    assert urls_only.headers["content-type"] == "application/json"
    assert json.loads(urls_only.content) == {
        "image_url": "https://example.com/shoe.jpg",
        "bg_color": "#ffffff",
        "preserve_shadow": True,
    }
