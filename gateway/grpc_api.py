"""The gRPC API, `replate.v1.Replate` (gateway/proto/replate/v1/replate.proto), and the server that serves it
beside the standard health and reflection services.

Like the HTTP routes, the servicer is a thin translation around `gateway.operations` and `gateway.predictions`.
Each call: authenticate the key in the metadata, check the fields against the HTTP API's schema (one set of bounds
for both protocols), run the operation, answer. Every answer to an authenticated call carries `x-request-id`,
`x-remaining-credits` and, when it charged, `x-credits-charged`, in its initial and its trailing metadata. A
`ReplateError` becomes its gRPC status (`gateway.errors.grpc_status`) with the message as details and the code in
the `x-error-code` trailing metadata (an error worth retrying later, `overloaded`, `unavailable`, `rate_limited`,
adds `retry-after` in seconds and gRPC's own retry pushback, `grpc-retry-pushback-ms`); any other exception becomes
INTERNAL with a generic message. The caller's deadline bounds the Triton call.

Synchronous calls store nothing: their outputs travel as bytes in the reply.
"""

from __future__ import annotations

import base64
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import grpc
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic import BaseModel, ValidationError

from gateway import operations, predictions
from gateway.auth import authenticate
from gateway.credits import BalanceReport, available_credits, get_balance, report_balance, start_balance_report
from gateway.db import Prediction, as_utc
from gateway.deps import Services, bearer_token, presented_key
from gateway.errors import grpc_status, retry_after_s
from gateway.images import InputImage, image_from_bytes
from gateway.logs import start_request
from gateway.proto.replate.v1 import replate_pb2 as pb
from gateway.proto.replate.v1 import replate_pb2_grpc
from gateway.schemas import RemoveBackgroundRequest, ReplaceBackgroundRequest, RunRequest
from replate.errors import ImageError, InvalidRequest, ReplateError

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Replate"].full_name
MIN_RECEIVE_BYTES = 256 * 1024 * 1024
"""Requests carry up to two images (photo and scene reference); the limit grows with `max_image_bytes`."""
MAX_SEND_BYTES = 1024 * 1024 * 1024
"""Four 25-megapixel PNG outputs stay well below this."""
INTERNAL_MESSAGE = "the server failed to process this request; try again later"

log = logging.getLogger("replate.grpc")
access_log = logging.getLogger("replate.access")

Reply = TypeVar("Reply", bound=Message)
Schema = TypeVar("Schema", bound=BaseModel)
Metadata = tuple[tuple[str, str], ...]

_MODELS = {"replace_background": pb.MODEL_BACKGROUND_CHANGE, "remove_background": pb.MODEL_REMOVE_BACKGROUND}
_STATUSES = {
    "starting": pb.PREDICTION_STATUS_STARTING,
    "processing": pb.PREDICTION_STATUS_PROCESSING,
    "succeeded": pb.PREDICTION_STATUS_SUCCEEDED,
    "failed": pb.PREDICTION_STATUS_FAILED,
    "canceled": pb.PREDICTION_STATUS_CANCELED,
}


@dataclass(frozen=True)
class _Caller:
    account_id: int
    request_id: str
    deadline: float | None
    """time.monotonic() when the client stops waiting, if it set a deadline."""


class ReplateServicer(replate_pb2_grpc.ReplateServicer):
    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        host = f"[{settings.http_host}]" if ":" in settings.http_host else settings.http_host
        self.output_base_url = (settings.public_base_url or f"http://{host}:{settings.http_port}").rstrip("/")

    async def ReplaceBackground(
        self, request: pb.ReplaceBackgroundRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReplaceBackgroundResponse:
        return await self._serve("ReplaceBackground", context, partial(self._replace_background, request))

    async def RemoveBackground(
        self, request: pb.RemoveBackgroundRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveBackgroundResponse:
        return await self._serve("RemoveBackground", context, partial(self._remove_background, request))

    async def SubmitPrediction(
        self, request: pb.SubmitPredictionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Prediction:
        return await self._serve("SubmitPrediction", context, partial(self._submit_prediction, request))

    async def GetPrediction(self, request: pb.GetPredictionRequest, context: grpc.aio.ServicerContext) -> pb.Prediction:
        return await self._serve("GetPrediction", context, partial(self._get_prediction, request))

    async def CancelPrediction(
        self, request: pb.CancelPredictionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Prediction:
        return await self._serve("CancelPrediction", context, partial(self._cancel_prediction, request))

    async def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.aio.ServicerContext) -> pb.Balance:
        return await self._serve("GetBalance", context, self._get_balance)

    # The operations: each returns its reply and the credits it charged (None: it charged nothing).

    async def _replace_background(
        self, request: pb.ReplaceBackgroundRequest, caller: _Caller
    ) -> tuple[pb.ReplaceBackgroundResponse, int]:
        body = _validated(
            ReplaceBackgroundRequest,
            image_url="",  # the images are read below, from bytes or a URL
            scene_prompt=request.scene_prompt or None,
            bg_color=request.bg_color or None,
            negative_prompt=request.negative_prompt or None,
            preserve_shadow=request.preserve_shadow if request.HasField("preserve_shadow") else None,
            seed=request.seed if request.HasField("seed") else None,
            num_outputs=request.num_outputs or None,
            output_format=_enum_text(pb.OutputFormat, request.output_format),
            mode=_enum_text(pb.Mode, request.mode),
            harmonize=request.harmonize,
            shadow=_enum_text(pb.Shadow, request.shadow),
        )
        image = await self._image(request, "image")
        scene_image = await self._image(request, "scene_image") if request.HasField("scene_image") else None
        options = operations.replace_options(self.services, body)
        delivered = await operations.replace_background(
            self.services,
            caller.account_id,
            caller.request_id,
            image=image,
            scene_image=scene_image,
            options=options,
            store=False,
            deadline=caller.deadline,
        )
        info = delivered.output.info
        reply = pb.ReplaceBackgroundResponse(
            id=caller.request_id,
            images=delivered.output.images,
            width=info["width"],
            height=info["height"],
            seed=info["seed"],
            credits_charged=delivered.credits_charged,
            engines=info["engines"],
            timings_ms=info["timings_ms"],
            notes=info.get("notes", []),
            lighting=[_lighting(entry) for entry in info.get("lighting", [])],
        )
        return reply, delivered.credits_charged

    async def _remove_background(
        self, request: pb.RemoveBackgroundRequest, caller: _Caller
    ) -> tuple[pb.RemoveBackgroundResponse, int]:
        body = _validated(
            RemoveBackgroundRequest,
            image="",
            channels=_enum_text(pb.Channels, request.channels),
            output_format=_enum_text(pb.OutputFormat, request.output_format),
        )
        image = await self._image(request, "image")
        options = operations.remove_options(self.services, body)
        delivered = await operations.remove_background(
            self.services,
            caller.account_id,
            caller.request_id,
            image=image,
            options=options,
            store=False,
            deadline=caller.deadline,
        )
        info = delivered.output.info
        reply = pb.RemoveBackgroundResponse(
            image=delivered.output.images[0],
            width=info["width"],
            height=info["height"],
            credits_charged=delivered.credits_charged,
            engines=info["engines"],
        )
        return reply, delivered.credits_charged

    async def _submit_prediction(
        self, request: pb.SubmitPredictionRequest, caller: _Caller
    ) -> tuple[pb.Prediction, None]:
        body = _validated(
            RunRequest,
            model=_enum_text(pb.Model, request.model),
            image="",
            prompt=request.prompt or None,
            seed=request.seed if request.HasField("seed") else None,
            output_format=_enum_text(pb.OutputFormat, request.output_format),
            return_base64=request.inline_output,
        )
        job = predictions.job_for(body, self.services)
        image = await self._image(request, "image")
        prediction = await predictions.submit(self.services, caller.account_id, job, image, caller.request_id)
        return self._prediction(prediction), None

    async def _get_prediction(
        self, request: pb.GetPredictionRequest, caller: _Caller
    ) -> tuple[pb.Prediction, int | None]:
        prediction, is_first_success_report = await predictions.fetch_for_client(
            self.services, caller.account_id, request.id
        )
        return self._prediction(prediction), prediction.credits if is_first_success_report else None

    async def _cancel_prediction(
        self, request: pb.CancelPredictionRequest, caller: _Caller
    ) -> tuple[pb.Prediction, None]:
        prediction = await predictions.cancel(self.services, caller.account_id, request.id)
        return self._prediction(prediction), None

    async def _get_balance(self, caller: _Caller) -> tuple[pb.Balance, None]:
        async with self.services.reader.connect() as connection:
            balance = await connection.run_sync(get_balance, caller.account_id)
        report_balance(balance)
        return pb.Balance(balance=balance.balance, held=balance.held, available=balance.available), None

    # Translation helpers.

    async def _image(self, request: Message, oneof: str) -> InputImage:
        """The image of a `<oneof>_bytes` / `<oneof>_url` pair: bytes checked as they are, URLs read safely."""
        source = request.WhichOneof(oneof)
        if source is None:
            raise InvalidRequest(f"{oneof}: required; send {oneof}_bytes or {oneof}_url")
        value = getattr(request, source)
        if source.endswith("_url"):
            return await operations.read_image(self.services, value, source)
        try:
            return image_from_bytes(value, self.services.limits)
        except ImageError as error:
            raise type(error)(f"{source}: {error.message}") from error

    def _prediction(self, prediction: Prediction) -> pb.Prediction:
        message = pb.Prediction(
            id=prediction.id,
            model=_MODELS[prediction.model],
            status=_STATUSES[prediction.status],
            credits_charged=prediction.credits if prediction.status == "succeeded" else 0,
        )
        message.created_at.FromDatetime(as_utc(prediction.created_at))
        if prediction.started_at is not None:
            message.started_at.FromDatetime(as_utc(prediction.started_at))
        if prediction.completed_at is not None:
            message.completed_at.FromDatetime(as_utc(prediction.completed_at))
        if prediction.output and prediction.return_base64:
            message.output_images.extend(_data_url_bytes(url) for url in prediction.output)
        elif prediction.output:
            message.output_urls.extend(
                self.services.storage.url_for(name, self.output_base_url) for name in prediction.output
            )
        if prediction.error:
            message.error.code = prediction.error["code"]
            message.error.message = prediction.error["message"]
        predict_time_s = predictions.predict_time_s(prediction)
        if predict_time_s is not None:
            message.predict_time_s = predict_time_s
        return message

    # The frame around every call: authentication, response metadata, errors, access log.

    async def _serve(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        operation: Callable[[_Caller], Awaitable[tuple[Reply, int | None]]],
    ) -> Reply:
        request_id = start_request(_text(dict(context.invocation_metadata() or ()).get("x-request-id")))
        started = time.perf_counter()
        balance_report = start_balance_report()
        account_id: int | None = None
        failure: ReplateError
        try:
            account_id = await self._authenticate(context)
            reply, credits_charged = await operation(_Caller(account_id, request_id, _deadline(context)))
        except ReplateError as error:
            if error.code == "internal":
                log.error("internal error in gRPC %s: %s", method, error.message)
            failure = error
        except Exception:  # never a stack trace to the client; the log has it
            log.exception("unhandled error in gRPC %s", method)
            failure = ReplateError("unhandled exception")
        else:
            metadata = await self._response_metadata(request_id, account_id, balance_report, credits_charged)
            await context.send_initial_metadata(metadata)
            context.set_trailing_metadata(metadata)
            self._log_access(method, grpc.StatusCode.OK, started, account_id)
            return reply
        status = grpc_status(failure)
        details = INTERNAL_MESSAGE if failure.code == "internal" else failure.message
        metadata = await self._response_metadata(request_id, account_id, balance_report, None)
        await context.send_initial_metadata(metadata)
        self._log_access(method, status, started, account_id)
        await context.abort(status, details, trailing_metadata=(*metadata, *_error_metadata(failure)))

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> int:
        metadata: dict[str, Any] = dict(context.invocation_metadata() or ())
        key = presented_key(bearer_token(_text(metadata.get("authorization"))), _text(metadata.get("x-api-key")))
        async with self.services.reader.connect() as connection:
            return await authenticate(connection, key, self.services.api_key_secret)

    async def _response_metadata(
        self, request_id: str, account_id: int | None, balance_report: BalanceReport, credits_charged: int | None
    ) -> Metadata:
        metadata = [("x-request-id", request_id)]
        if account_id is not None:
            try:
                available = await available_credits(self.services.reader, account_id, balance_report)
                metadata.append(("x-remaining-credits", str(available)))
            except Exception:  # the answer (or its error) matters more than this header
                log.exception("could not read the balance for x-remaining-credits")
        if credits_charged is not None:
            metadata.append(("x-credits-charged", str(credits_charged)))
        return tuple(metadata)

    def _log_access(self, method: str, status: grpc.StatusCode, started: float, account_id: int | None) -> None:
        route = f"/{SERVICE_NAME}/{method}"
        access_log.info(
            "gRPC %s %s",
            route,
            status.name,
            extra={
                "status": status.name,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "account_id": account_id,
                "route": route,
            },
        )


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    time_remaining_s = context.time_remaining()
    return None if time_remaining_s is None else time.monotonic() + time_remaining_s


def _error_metadata(error: ReplateError) -> Metadata:
    metadata = [("x-error-code", error.code)]
    retry_after = retry_after_s(error)
    if retry_after is not None:
        metadata += [("retry-after", str(retry_after)), ("grpc-retry-pushback-ms", str(retry_after * 1000))]
    return tuple(metadata)


def _validated(schema: type[Schema], **fields: object) -> Schema:
    """`fields` checked by the HTTP API's schema, whose bounds and defaults both protocols share. None means not
    set: the schema's default applies. A problem is an InvalidRequest naming the field."""
    try:
        return schema.model_validate({name: value for name, value in fields.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'request'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidRequest(problems) from exc


def _lighting(entry: dict[str, Any]) -> pb.Lighting:
    """One output's INFO `lighting` entry as its message."""
    return pb.Lighting(
        scene=pb.LightDirection(**entry["scene"]),
        subject=pb.LightDirection(**entry["subject"]),
        shadow=entry["shadow"],
        harmonize=entry["harmonize"],
    )


def _enum_text(enum: EnumTypeWrapper, value: int) -> str | None:
    """An enum value as the HTTP API spells it (OUTPUT_FORMAT_JPEG -> "jpeg", MODEL_BACKGROUND_CHANGE ->
    "background-change"); None for the zero value (the default); the bare number for a value this server does not
    know, so that validation refuses it naming the field."""
    if value == 0:
        return None
    try:
        name = enum.Name(value)
    except ValueError:
        return str(value)
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    return name.removeprefix(prefix).lower().replace("_", "-")


def _text(value: str | bytes | None) -> str | None:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _data_url_bytes(url: str) -> bytes:
    """The bytes of a `data:<mime>;base64,<data>` URL (how inline prediction outputs are kept until delivered)."""
    return base64.b64decode(url.partition(",")[2])


@dataclass(frozen=True)
class GrpcServer:
    """A started gRPC server and the port it listens on (a free one when port 0 was asked for)."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int

    async def stop(self, grace_s: float | None) -> None:
        """Report NOT_SERVING, stop accepting calls, give calls in flight `grace_s` seconds (None: cancel them)."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


_MALFORMED = object()
"""What a request that is not a valid protobuf message deserializes to (see RefuseMalformedRequests)."""


class RefuseMalformedRequests(grpc.aio.ServerInterceptor):
    """A unary request whose bytes are not a valid message of its type is INVALID_ARGUMENT (`invalid_request`),
    before any handler runs; left alone, grpc answers UNKNOWN with the name of the Python exception."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        deserialize, behavior = handler.request_deserializer, handler.unary_unary
        method = handler_call_details.method

        def deserialize_or_mark(data: bytes) -> object:
            try:
                return deserialize(data)
            except DecodeError:
                return _MALFORMED

        async def refuse_or_run(request: object, context: grpc.aio.ServicerContext) -> object:
            if request is _MALFORMED:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the request is not a valid protobuf message for {method}",
                    trailing_metadata=(("x-error-code", InvalidRequest.code),),
                )
            reply = behavior(request, context)
            return await reply if inspect.isawaitable(reply) else reply

        return grpc.unary_unary_rpc_method_handler(
            refuse_or_run, request_deserializer=deserialize_or_mark, response_serializer=handler.response_serializer
        )


async def start_grpc_server(services: Services, host: str, port: int) -> GrpcServer:
    """Serve `replate.v1.Replate`, `grpc.health.v1.Health` (overall and per service: SERVING) and server
    reflection on host:port, without TLS (terminate TLS in front of it). Stop it with `await server.stop(grace_s)`."""
    max_receive_bytes = max(MIN_RECEIVE_BYTES, 2 * services.settings.max_image_bytes + 1024 * 1024)
    server = grpc.aio.server(
        interceptors=[RefuseMalformedRequests()],
        options=[
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.so_reuseport", 0),  # a port already taken is an error, not a shared port
        ],
    )
    replate_pb2_grpc.add_ReplateServicer_to_server(ReplateServicer(services), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound_port = server.add_insecure_port(address)
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    log.info("gRPC API listening on %s:%d", host, bound_port)
    if not services.settings.public_base_url:
        log.info("gRPC output URLs start with the HTTP address; set REPLATE_PUBLIC_BASE_URL for remote clients")
    return GrpcServer(server=server, health=health_servicer, port=bound_port)
