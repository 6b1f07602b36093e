"""Channels to the gRPC API with the API key in every call's metadata and room for full-resolution images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

MAX_RECEIVE_BYTES = 512 << 20
"""Replies carry full-resolution images, far past gRPC's 4 MiB default (a result lost there was already charged)."""
MAX_SEND_BYTES = 256 << 20
"""The server's own receive limit."""
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.max_send_message_length", MAX_SEND_BYTES),
)


def grpc_channel(target: str, api_key: str, *, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
    """A blocking channel (TLS with `credentials`, else plaintext) whose calls carry `authorization: Bearer <key>`.
    Use it with `ReplateStub(channel)`; close it (or use it in a `with` block) when done."""
    channel = (
        grpc.secure_channel(target, credentials, CHANNEL_OPTIONS)
        if credentials
        else grpc.insecure_channel(target, CHANNEL_OPTIONS)
    )
    return grpc.intercept_channel(channel, _ApiKey(api_key))


def async_grpc_channel(
    target: str, api_key: str, *, credentials: grpc.ChannelCredentials | None = None
) -> grpc.aio.Channel:
    """`grpc_channel` for grpc.aio."""
    interceptors = [_AsyncApiKey(api_key)]
    if credentials:
        return grpc.aio.secure_channel(target, credentials, CHANNEL_OPTIONS, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, CHANNEL_OPTIONS, interceptors=interceptors)


def _with_key(details: Any, api_key: str) -> Any:
    """The call's details (a namedtuple in both grpc and grpc.aio) with the key added to its metadata."""
    return details._replace(metadata=[*(details.metadata or ()), ("authorization", f"Bearer {api_key}")])


class _ApiKey(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: Any, request: Any) -> Any:
        return continuation(_with_key(client_call_details, self._api_key), request)


class _AsyncApiKey(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_key(client_call_details, self._api_key), request)
