"""`Client` and `AsyncClient`: the same methods, blocking and awaitable, over httpx."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, Unpack

import anyio
import httpx

from replate.client import _calls as calls
from replate.client._calls import ApiCall, BgReplaceParams, ImageInput, RemoveBgParams, ReplaceParams
from replate.client._models import Credits, ImageResult, Prediction, ReplaceResult, decode_data_url
from replate.client._retry import Outcome, RetryPolicy

T = TypeVar("T")
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 300.0
"""Long enough for a generated scene on a CPU; a call that times out is retried with its Idempotency-Key."""
POLL_INTERVAL_S = 0.5
Destination = str | os.PathLike[str] | IO[bytes]


class _Base:
    def __init__(self, api_key: str | None, retry: RetryPolicy) -> None:
        api_key = api_key or os.environ.get("REPLATE_API_KEY")
        if not api_key:
            raise ValueError("an API key is needed: pass api_key= or set REPLATE_API_KEY")
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self.retry = retry

    def _request_args(self, call: ApiCall[Any], idempotency_key: str | None) -> dict[str, Any]:
        headers = dict(self._auth)
        if call.is_billable:
            key = idempotency_key or calls.new_idempotency_key()
            headers["Idempotency-Key"] = key
            if call.files:
                headers["Content-Type"] = calls.multipart_content_type(key)
        return {
            "method": call.method,
            "url": call.path,
            "json": call.json,
            "data": call.data,
            "files": call.files,
            "headers": headers,
        }


class Client(_Base):
    """A blocking client of the replate HTTP API.

    Billable calls carry an Idempotency-Key, made once per call (or yours, `idempotency_key=`) and sent again on
    every retry, so that a retried call is answered once and charged once. 429 and 503 answers and connection
    errors are retried as `retry` says (Retry-After honoured). Errors the server answers raise `ApiError`; a
    connection that still fails after the retries raises httpx's error. `transport` is httpx's (tests, proxies)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(api_key, retry or RetryPolicy())
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def replace_background(
        self, image: ImageInput, *, idempotency_key: str | None = None, **params: Unpack[ReplaceParams]
    ) -> ReplaceResult:
        """`POST /v1/image/replace-background`: give one of scene_prompt, scene_image (with or without a prompt),
        bg_color. 5 credits per output."""
        return self._send(calls.replace_background(image, params), idempotency_key)

    def remove_background(
        self,
        image: ImageInput,
        *,
        channels: Literal["rgba", "alpha"] = "rgba",
        output_format: Literal["png", "webp"] = "png",
        idempotency_key: str | None = None,
    ) -> ImageResult:
        """`POST /v1/remove-background`: the RGBA cutout, or the 8-bit matte with channels="alpha". 1 credit."""
        return self._send(calls.remove_background(image, channels, output_format), idempotency_key)

    def bg_replace(
        self, image: ImageInput, *, idempotency_key: str | None = None, **params: Unpack[BgReplaceParams]
    ) -> ImageResult:
        """`POST /v1/bg-replace` (Segmind-style), one image per sample."""
        return self._send(calls.bg_replace(image, params), idempotency_key)

    def removebg(
        self, image: ImageInput, *, idempotency_key: str | None = None, **params: Unpack[RemoveBgParams]
    ) -> ImageResult:
        """`POST /v1.0/removebg` (remove.bg-compatible)."""
        return self._send(calls.removebg(image, params), idempotency_key)

    def run(
        self,
        model: Literal["background-change", "remove-background"],
        image: ImageInput,
        *,
        prompt: str | None = None,
        seed: int | None = None,
        output_format: Literal["png", "jpeg"] = "png",
        return_base64: bool = False,
        idempotency_key: str | None = None,
    ) -> Prediction:
        """`POST /v1/run`: start a prediction (credits held now, charged when it succeeds); see `wait`."""
        call = calls.run(
            model, image, prompt=prompt, seed=seed, output_format=output_format, return_base64=return_base64
        )
        return self._send(call, idempotency_key)

    def get_prediction(self, prediction_id: str) -> Prediction:
        return self._send(calls.get_prediction(prediction_id))

    def cancel_prediction(self, prediction_id: str) -> Prediction:
        return self._send(calls.cancel_prediction(prediction_id))

    def wait(self, prediction_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Prediction:
        """Poll a prediction until it has finished (succeeded, failed or canceled); TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while not (prediction := self.get_prediction(prediction_id)).is_finished:
            if time.monotonic() > deadline:
                raise TimeoutError(f"prediction {prediction_id} is still {prediction.status} after {timeout_s} s")
            time.sleep(POLL_INTERVAL_S)
        return prediction

    def credits(self) -> Credits:
        return self._send(calls.credits())

    def health(self) -> dict[str, Any]:
        return self._send(calls.system("/healthz"))

    def ready(self) -> dict[str, Any]:
        """`GET /readyz`; raises ApiError (503 unavailable) when Triton or the database is not reachable."""
        return self._send(calls.system("/readyz"))

    def openapi(self) -> dict[str, Any]:
        return self._send(calls.system("/openapi.json"))

    def metrics(self) -> str:
        return self._send(calls.metrics())

    def download(self, url: str, destination: Destination) -> int:
        """Stream an output (a signed URL, or a data URL) to a path or binary file; returns the bytes written. The
        API key is not sent: output URLs are their own credential and may point at another host."""
        if url.startswith("data:"):
            return _write(destination, [decode_data_url(url)])
        with self._http.stream("GET", url) as response:
            if not response.is_success:
                response.read()
                calls.check(response)
            return _write(destination, response.iter_bytes())

    def _send(self, call: ApiCall[T], idempotency_key: str | None = None) -> T:
        args = self._request_args(call, idempotency_key)
        retry = 0
        while True:
            outcome: Outcome
            try:
                outcome = self._http.request(**args)
            except httpx.TransportError as error:
                outcome = error
            delay_s = self.retry.delay_s(retry, outcome)
            if delay_s is None:
                break
            time.sleep(delay_s)
            retry += 1
        if isinstance(outcome, httpx.TransportError):
            raise outcome
        return call.read(outcome)


class AsyncClient(_Base):
    """`Client` for asyncio (or trio): the same methods, awaitable."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(api_key, retry or RetryPolicy())
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def replace_background(
        self, image: ImageInput, *, idempotency_key: str | None = None, **params: Unpack[ReplaceParams]
    ) -> ReplaceResult:
        return await self._send(calls.replace_background(image, params), idempotency_key)

    async def remove_background(
        self,
        image: ImageInput,
        *,
        channels: Literal["rgba", "alpha"] = "rgba",
        output_format: Literal["png", "webp"] = "png",
        idempotency_key: str | None = None,
    ) -> ImageResult:
        return await self._send(calls.remove_background(image, channels, output_format), idempotency_key)

    async def bg_replace(
        self, image: ImageInput, *, idempotency_key: str | None = None, **params: Unpack[BgReplaceParams]
    ) -> ImageResult:
        return await self._send(calls.bg_replace(image, params), idempotency_key)

    async def removebg(
        self, image: ImageInput, *, idempotency_key: str | None = None, **params: Unpack[RemoveBgParams]
    ) -> ImageResult:
        return await self._send(calls.removebg(image, params), idempotency_key)

    async def run(
        self,
        model: Literal["background-change", "remove-background"],
        image: ImageInput,
        *,
        prompt: str | None = None,
        seed: int | None = None,
        output_format: Literal["png", "jpeg"] = "png",
        return_base64: bool = False,
        idempotency_key: str | None = None,
    ) -> Prediction:
        call = calls.run(
            model, image, prompt=prompt, seed=seed, output_format=output_format, return_base64=return_base64
        )
        return await self._send(call, idempotency_key)

    async def get_prediction(self, prediction_id: str) -> Prediction:
        return await self._send(calls.get_prediction(prediction_id))

    async def cancel_prediction(self, prediction_id: str) -> Prediction:
        return await self._send(calls.cancel_prediction(prediction_id))

    async def wait(self, prediction_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Prediction:
        with anyio.fail_after(timeout_s):
            while True:
                prediction = await self.get_prediction(prediction_id)
                if prediction.is_finished:
                    return prediction
                await anyio.sleep(POLL_INTERVAL_S)

    async def credits(self) -> Credits:
        return await self._send(calls.credits())

    async def health(self) -> dict[str, Any]:
        return await self._send(calls.system("/healthz"))

    async def ready(self) -> dict[str, Any]:
        return await self._send(calls.system("/readyz"))

    async def openapi(self) -> dict[str, Any]:
        return await self._send(calls.system("/openapi.json"))

    async def metrics(self) -> str:
        return await self._send(calls.metrics())

    async def download(self, url: str, destination: Destination) -> int:
        if url.startswith("data:"):
            return await _write_async(destination, _one(decode_data_url(url)))
        async with self._http.stream("GET", url) as response:
            if not response.is_success:
                await response.aread()
                calls.check(response)
            return await _write_async(destination, response.aiter_bytes())

    async def _send(self, call: ApiCall[T], idempotency_key: str | None = None) -> T:
        args = self._request_args(call, idempotency_key)
        retry = 0
        while True:
            outcome: Outcome
            try:
                outcome = await self._http.request(**args)
            except httpx.TransportError as error:
                outcome = error
            delay_s = self.retry.delay_s(retry, outcome)
            if delay_s is None:
                break
            await anyio.sleep(delay_s)
            retry += 1
        if isinstance(outcome, httpx.TransportError):
            raise outcome
        return call.read(outcome)


def _write(destination: Destination, chunks: Iterable[bytes]) -> int:
    if isinstance(destination, str | os.PathLike):
        with Path(destination).open("wb") as file:
            return _write(file, chunks)
    written = 0
    for chunk in chunks:
        destination.write(chunk)
        written += len(chunk)
    return written


async def _write_async(destination: Destination, chunks: AsyncIterator[bytes]) -> int:
    if isinstance(destination, str | os.PathLike):
        async with await anyio.open_file(destination, "wb") as file:
            return await _write_chunks(file, chunks)
    return await _write_chunks(anyio.wrap_file(destination), chunks)


async def _write_chunks(file: anyio.AsyncFile[bytes], chunks: AsyncIterator[bytes]) -> int:
    written = 0
    async for chunk in chunks:
        await file.write(chunk)
        written += len(chunk)
    return written


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
