"""A Python client of the replate API: `Client` (blocking) and `AsyncClient` over HTTP, typed results, retries
with backoff on 429/503 that honour Retry-After and are never charged twice (an automatic Idempotency-Key),
streaming downloads of outputs; and `grpc_channel` for the gRPC API.

    from replate.client import Client

    with Client("http://127.0.0.1:8080", api_key="rp_...") as client:
        result = client.replace_background("product.jpg", scene_prompt="marble counter, morning light")
        client.download(result.output_url, "product-kitchen.png")
        print(result.credits_charged, result.remaining_credits)
"""

from gateway.proto.replate.v1 import replate_pb2 as pb
from gateway.proto.replate.v1.replate_pb2_grpc import ReplateStub
from replate.client._calls import BgReplaceParams, ImageInput, RemoveBgParams, ReplaceParams
from replate.client._grpc import async_grpc_channel, grpc_channel
from replate.client._http import AsyncClient, Client
from replate.client._models import ApiError, Credits, ImageResult, Prediction, PredictionError, ReplaceResult
from replate.client._retry import NO_RETRIES, RetryPolicy

__all__ = [
    "NO_RETRIES",
    "ApiError",
    "AsyncClient",
    "BgReplaceParams",
    "Client",
    "Credits",
    "ImageInput",
    "ImageResult",
    "Prediction",
    "PredictionError",
    "RemoveBgParams",
    "ReplaceParams",
    "ReplaceResult",
    "ReplateStub",
    "RetryPolicy",
    "async_grpc_channel",
    "grpc_channel",
    "pb",
]
