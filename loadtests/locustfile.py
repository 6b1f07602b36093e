"""Locust users for replate, one per protocol, each with a weighted mix of the public operations.

`python -m loadtests.run` starts the stack and runs this file; by hand, against a running `replate serve`:
    locust -f loadtests/locustfile.py --headless -u 4 -r 1 -t 60s --host http://127.0.0.1:8080 \\
        --api-key rp_... --grpc-target 127.0.0.1:50051 --records records.jsonl
Add `,loadtests/shape.py` to -f for the step load. Every finished request is appended to --records as one JSON
line, which loadtests.report reads; a request that delivered outputs names its operation and how many outputs,
so that the report can reconcile them with the credit journal.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import gevent
import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import FastHttpUser, User, between, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment

from gateway.proto.replate.v1 import replate_pb2 as pb
from gateway.proto.replate.v1.replate_pb2_grpc import ReplateStub
from loadtests.images import Payloads, Photo, make_payloads
from loadtests.records import PREDICTION_NAME, RUN_NAME, UNRESOLVED

grpc_gevent.init_gevent()  # grpc's I/O must yield to gevent's loop, or one call would stall every user

REQUEST_TIMEOUT_S = 180.0
POLL_INTERVAL_S = 0.5
PREDICTION_DEADLINE_S = 120.0
MAX_MESSAGE_BYTES = 64 << 20
COLORS = ("#f4efe6", "#ffffff", "#1d3557", "mintcream")
PROMPTS = (
    "modern kitchen counter with morning light",
    "warm wooden table, soft window light",
    "white marble, bright studio",
    "dark slate, dramatic spotlight",
)


@functools.cache
def payloads() -> Payloads:
    return make_payloads()


def _shot() -> Photo:
    return random.choice(payloads().shots)


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--api-key", default="", help="a replate API key with enough credits")
    parser.add_argument("--grpc-target", default="127.0.0.1:50051", help="host:port of the gateway's gRPC server")
    parser.add_argument("--records", default="", help="append one JSON line per finished request to this file")


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    payloads()  # generated once, before any user starts, so that no request waits for it
    if environment.parsed_options and environment.parsed_options.records:
        RequestRecorder(environment, Path(environment.parsed_options.records))


class RequestRecorder:
    """Appends every finished request to a JSON-lines file (line-buffered: a killed run keeps what it did)."""

    def __init__(self, environment: Environment, path: Path) -> None:
        self.environment = environment
        self.file: IO[str] = path.open("a", encoding="utf-8", buffering=1)
        environment.events.request.add_listener(self.record)
        environment.events.quit.add_listener(self.close)

    def record(
        self,
        request_type: str,
        name: str,
        response_time: float,
        exception: BaseException | None,
        context: dict[str, Any],
        start_time: float | None = None,
        **_kwargs: Any,
    ) -> None:
        runner = self.environment.runner
        line = {
            "start": start_time if start_time is not None else time.time() - response_time / 1000,
            "type": request_type,
            "name": name,
            "ms": round(response_time, 3),
            "error": (str(exception) or type(exception).__name__) if exception else None,
            "users": runner.user_count if runner else 0,
            **{key: context[key] for key in ("operation", "outputs", "prediction_id") if key in context},
        }
        self.file.write(json.dumps(line) + "\n")

    def close(self, **_kwargs: Any) -> None:
        self.file.close()


class RequestFailed(Exception):
    """A failed request, labelled like `HTTP 503 overloaded` or `gRPC UNAVAILABLE overloaded`."""


def checked(response: ResponseContextManager, expected_status: int) -> bool:
    """Mark the response failed unless it has `expected_status`."""
    if response.status_code == expected_status:
        return True
    if not response.status_code:
        response.failure(f"connection {type(response.error).__name__}")
    else:
        response.failure(f"HTTP {response.status_code} {_error_code(response)}")
    return False


def _error_code(response: ResponseContextManager) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "-"


def delivered(response: ResponseContextManager, operation: str, outputs: int) -> None:
    response.request_meta["context"].update(operation=operation, outputs=outputs)


class HttpApiUser(FastHttpUser):
    """The JSON API: synchronous replace (colour, reference photo, studio prompt) and remove, an asynchronous
    prediction polled to its end, and balance checks."""

    weight = 3
    wait_time = between(0.2, 1.0)
    network_timeout = REQUEST_TIMEOUT_S
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.environment.parsed_options.api_key}"}

    @task(3)
    def replace_color(self) -> None:
        self._replace("color", {"bg_color": random.choice(COLORS), "output_format": "jpeg"})

    @task(2)
    def replace_reference(self) -> None:
        self._replace("reference", {"scene_image_url": payloads().scene.data_url, "output_format": "jpeg"})

    @task(2)
    def replace_prompt(self) -> None:
        self._replace("prompt", {"scene_prompt": random.choice(PROMPTS), "seed": random.randrange(1 << 31)})

    @task(3)
    def remove_background(self) -> None:
        body = {"image": _shot().data_url}
        with self._post("/v1/remove-background", body, "/v1/remove-background") as response:
            if checked(response, 200):
                delivered(response, "remove_background", 1)

    @task(2)
    def predict(self) -> None:
        started, begun = time.time(), time.perf_counter()
        body = {"model": "background-change", "image": _shot().data_url, "prompt": random.choice(PROMPTS)}
        with self._post("/v1/run", body, RUN_NAME) as response:
            if not checked(response, 201):
                return
            prediction_id = str(response.json()["id"])
            response.request_meta["context"]["prediction_id"] = prediction_id
        status, outputs = self._await_prediction(prediction_id)
        context: dict[str, Any] = {"prediction_id": prediction_id}
        if status == "succeeded":
            context.update(operation="replace_background", outputs=outputs)
        self.environment.events.request.fire(
            request_type="ASYNC",
            name=PREDICTION_NAME,
            response_time=(time.perf_counter() - begun) * 1000,
            response_length=0,
            exception=None if status == "succeeded" else RequestFailed(_prediction_label(status)),
            context=context,
            start_time=started,
        )

    @task(2)
    def balance(self) -> None:
        with self.client.get("/v1/credits", headers=self.headers, name="/v1/credits", catch_response=True) as response:
            checked(response, 200)

    def _replace(self, scene: str, fields: dict[str, Any]) -> None:
        body = {"image_url": _shot().data_url, **fields}
        with self._post("/v1/image/replace-background", body, f"/v1/image/replace-background {scene}") as response:
            if checked(response, 200):
                delivered(response, "replace_background", len(response.json()["outputs"]))

    def _post(self, path: str, body: dict[str, Any], name: str) -> ResponseContextManager:
        return self.client.post(path, json=body, headers=self.headers, name=name, catch_response=True)

    def _await_prediction(self, prediction_id: str) -> tuple[str, int]:
        """(final status, outputs), or (UNRESOLVED, 0) past the deadline; a failed poll is retried."""
        deadline = time.monotonic() + PREDICTION_DEADLINE_S
        while time.monotonic() < deadline:
            gevent.sleep(POLL_INTERVAL_S)
            path = f"/v1/predictions/{prediction_id}"
            with self.client.get(path, headers=self.headers, name="/v1/predictions/{id}", catch_response=True) as poll:
                if checked(poll, 200) and (prediction := poll.json())["status"] in ("succeeded", "failed", "canceled"):
                    return prediction["status"], len(prediction.get("output") or ())
        return UNRESOLVED, 0


Delivered = Callable[[Any], tuple[str, int]]
"""What a successful reply delivered: (operation, outputs)."""


class GrpcApiUser(User):
    """The gRPC API (image bytes, no base64): replace with a colour or a prompt, remove, balance."""

    weight = 1
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        limits = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", -1)]
        self.channel = grpc.insecure_channel(options.grpc_target, options=limits)
        self.stub = ReplateStub(self.channel)
        self.metadata = (("authorization", f"Bearer {options.api_key}"),)

    def on_stop(self) -> None:
        self.channel.close()

    @task(2)
    def replace_color(self) -> None:
        request = pb.ReplaceBackgroundRequest(
            image_bytes=_shot().jpeg, bg_color=random.choice(COLORS), output_format=pb.OUTPUT_FORMAT_JPEG
        )
        self._call("ReplaceBackground color", self.stub.ReplaceBackground, request, _replaced)

    @task(1)
    def replace_prompt(self) -> None:
        request = pb.ReplaceBackgroundRequest(image_bytes=_shot().jpeg, scene_prompt=random.choice(PROMPTS))
        self._call("ReplaceBackground prompt", self.stub.ReplaceBackground, request, _replaced)

    @task(2)
    def remove_background(self) -> None:
        request = pb.RemoveBackgroundRequest(image_bytes=_shot().jpeg)
        self._call("RemoveBackground", self.stub.RemoveBackground, request, lambda _reply: ("remove_background", 1))

    @task(1)
    def balance(self) -> None:
        self._call("GetBalance", self.stub.GetBalance, pb.GetBalanceRequest(), None)

    def _call(self, name: str, method: Any, request: Any, outputs_of: Delivered | None) -> None:
        started, begun = time.time(), time.perf_counter()
        context: dict[str, Any] = {}
        exception: RequestFailed | None = None
        length = 0
        try:
            reply = method(request, metadata=self.metadata, timeout=REQUEST_TIMEOUT_S)
        except grpc.RpcError as error:
            exception = RequestFailed(_grpc_label(error))
        else:
            length = reply.ByteSize()
            if outputs_of is not None:
                operation, outputs = outputs_of(reply)
                context = {"operation": operation, "outputs": outputs}
        self.environment.events.request.fire(
            request_type="gRPC",
            name=name,
            response_time=(time.perf_counter() - begun) * 1000,
            response_length=length,
            exception=exception,
            context=context,
            start_time=started,
        )


def _replaced(reply: pb.ReplaceBackgroundResponse) -> tuple[str, int]:
    return "replace_background", len(reply.images)


def _prediction_label(status: str) -> str:
    return status if status == UNRESOLVED else f"prediction {status}"


def _grpc_label(error: grpc.RpcError) -> str:
    call: Any = error  # a unary call's RpcError is also its grpc.Call
    trailing = dict(call.trailing_metadata() or ())
    return f"gRPC {call.code().name} {trailing.get('x-error-code', '-')}"
