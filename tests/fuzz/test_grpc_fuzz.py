"""gRPC fuzz: every method of `replate.v1.Replate` called on a real grpc.aio server on 127.0.0.1 with random
messages built from the request descriptors (every field type, unknown enum values, both arms of each oneof, real
and hostile image bytes, URLs to private addresses), with random bytes as the request, and with random metadata.
The answer is OK or one of the documented statuses, never INTERNAL or UNKNOWN."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import GRPC_STATUS
from gateway.proto.replate.v1 import replate_pb2 as pb
from gateway.settings import Settings
from tests.fakes import InProcessPipelines
from tests.fuzz import hostile_images as hostile
from tests.fuzz.budget import fuzz_settings, tried
from tests.unit.gateway.test_grpc_api import Harness, serving

SERVICE = pb.DESCRIPTOR.services_by_name["Replate"]
METHODS = tuple(method.name for method in SERVICE.methods)
DOCUMENTED = frozenset(GRPC_STATUS.values()) - {grpc.StatusCode.INTERNAL} | {grpc.StatusCode.OK}
CREDITS = 1000
TINY_PNG = hostile.png(4, 4, b"x\x9cc`\xa0\x1d\x00\x00\x00\x3c\x00\x01")

_SCALARS = {
    FieldDescriptor.TYPE_STRING: st.one_of(
        st.text(max_size=40),
        st.sampled_from(["#ffffff", "http://10.0.0.1/a.png", "http://169.254.169.254/", "data:image/png;base64,AA"]),
    ),
    FieldDescriptor.TYPE_BYTES: st.one_of(
        st.binary(max_size=200), st.just(TINY_PNG), hostile.mutated(st.just(TINY_PNG)), hostile.encoded_images()
    ),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
    FieldDescriptor.TYPE_DOUBLE: st.floats(),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_ENUM: st.integers(-3, 8),  # the known values and some this server does not know
}


def _near_bounds(field: FieldDescriptor) -> st.SearchStrategy[int]:
    """Counts and seeds around their bounds, where validation decides, as well as anywhere in the type's range."""
    low = -2 if field.type == FieldDescriptor.TYPE_INT32 else 0
    return st.one_of(_SCALARS[field.type], st.integers(low, 6))


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor) -> Message:
    """A message of `descriptor` with a random subset of its fields set (oneof arms included) to random values."""
    message = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            continue  # requests carry no nested messages of their own
        values = (
            _near_bounds(field)
            if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32)
            else (_SCALARS[field.type])
        )
        if field.label == FieldDescriptor.LABEL_REPEATED:
            getattr(message, field.name).extend(draw(st.lists(values, max_size=3)))
        else:
            setattr(message, field.name, draw(values))
    return message


METADATA = st.sampled_from(["valid", "none", "bad key", "odd"])


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    async with serving(settings, InProcessPipelines()) as running:
        yield running


async def call(harness: Harness, method: str, request: bytes, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    """Send serialized request bytes to a method through the generic channel API; -> the status."""
    invoke = harness.channel.unary_unary(f"/{SERVICE.full_name}/{method}")
    try:
        await invoke(request, metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def metadata_for(kind: str, key: str) -> tuple[tuple[str, str], ...]:
    return {
        "valid": (("authorization", f"Bearer {key}"), ("x-request-id", "fuzz-request-0001")),
        "none": (),
        "bad key": (("x-api-key", "rp_0_not-a-key"),),
        "odd": (("authorization", "Bearer"), ("x-api-key", key), ("x-request-id", "not an id; " + "a" * 500)),
    }[kind]


@pytest.fixture
async def key(make_key) -> str:
    return await make_key(CREDITS)


@hostile.PILLOW_WARNINGS
@pytest.mark.parametrize("method", METHODS)
@fuzz_settings(ci_examples=40)
@given(data=st.data(), metadata=METADATA)
async def test_every_method_answers_random_messages_with_a_documented_status(
    harness, key, method: str, data: st.DataObject, metadata: str
) -> None:
    tried(f"gRPC {method}: random messages")
    message = data.draw(messages(SERVICE.methods_by_name[method].input_type))
    status = await call(harness, method, message.SerializeToString(), metadata_for(metadata, key))
    assert status in DOCUMENTED, status


@pytest.mark.parametrize("method", METHODS)
@fuzz_settings(ci_examples=30)
@given(request=st.binary(max_size=300), metadata=METADATA)
async def test_every_method_answers_random_bytes_with_a_documented_status(
    harness, key, method: str, request: bytes, metadata: str
) -> None:
    tried(f"gRPC {method}: random bytes")
    status = await call(harness, method, request, metadata_for(metadata, key))
    assert status in DOCUMENTED, status
