import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_FORMAT_UNSPECIFIED: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_PNG: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_JPEG: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_WEBP: _ClassVar[OutputFormat]

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_FAST: _ClassVar[Mode]
    MODE_BALANCED: _ClassVar[Mode]
    MODE_QUALITY: _ClassVar[Mode]

class Channels(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNELS_UNSPECIFIED: _ClassVar[Channels]
    CHANNELS_RGBA: _ClassVar[Channels]
    CHANNELS_ALPHA: _ClassVar[Channels]

class Model(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_UNSPECIFIED: _ClassVar[Model]
    MODEL_BACKGROUND_CHANGE: _ClassVar[Model]
    MODEL_REMOVE_BACKGROUND: _ClassVar[Model]

class Shadow(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHADOW_UNSPECIFIED: _ClassVar[Shadow]
    SHADOW_NONE: _ClassVar[Shadow]
    SHADOW_CONTACT: _ClassVar[Shadow]
    SHADOW_CAST: _ClassVar[Shadow]

class PredictionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREDICTION_STATUS_UNSPECIFIED: _ClassVar[PredictionStatus]
    PREDICTION_STATUS_STARTING: _ClassVar[PredictionStatus]
    PREDICTION_STATUS_PROCESSING: _ClassVar[PredictionStatus]
    PREDICTION_STATUS_SUCCEEDED: _ClassVar[PredictionStatus]
    PREDICTION_STATUS_FAILED: _ClassVar[PredictionStatus]
    PREDICTION_STATUS_CANCELED: _ClassVar[PredictionStatus]
OUTPUT_FORMAT_UNSPECIFIED: OutputFormat
OUTPUT_FORMAT_PNG: OutputFormat
OUTPUT_FORMAT_JPEG: OutputFormat
OUTPUT_FORMAT_WEBP: OutputFormat
MODE_UNSPECIFIED: Mode
MODE_FAST: Mode
MODE_BALANCED: Mode
MODE_QUALITY: Mode
CHANNELS_UNSPECIFIED: Channels
CHANNELS_RGBA: Channels
CHANNELS_ALPHA: Channels
MODEL_UNSPECIFIED: Model
MODEL_BACKGROUND_CHANGE: Model
MODEL_REMOVE_BACKGROUND: Model
SHADOW_UNSPECIFIED: Shadow
SHADOW_NONE: Shadow
SHADOW_CONTACT: Shadow
SHADOW_CAST: Shadow
PREDICTION_STATUS_UNSPECIFIED: PredictionStatus
PREDICTION_STATUS_STARTING: PredictionStatus
PREDICTION_STATUS_PROCESSING: PredictionStatus
PREDICTION_STATUS_SUCCEEDED: PredictionStatus
PREDICTION_STATUS_FAILED: PredictionStatus
PREDICTION_STATUS_CANCELED: PredictionStatus

class ReplaceBackgroundRequest(_message.Message):
    __slots__ = ("image_bytes", "image_url", "scene_image_bytes", "scene_image_url", "scene_prompt", "bg_color", "negative_prompt", "preserve_shadow", "seed", "num_outputs", "output_format", "mode", "harmonize", "shadow")
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    SCENE_IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SCENE_IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    SCENE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    BG_COLOR_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    PRESERVE_SHADOW_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NUM_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    HARMONIZE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    image_bytes: bytes
    image_url: str
    scene_image_bytes: bytes
    scene_image_url: str
    scene_prompt: str
    bg_color: str
    negative_prompt: str
    preserve_shadow: bool
    seed: int
    num_outputs: int
    output_format: OutputFormat
    mode: Mode
    harmonize: float
    shadow: Shadow
    def __init__(self, image_bytes: _Optional[bytes] = ..., image_url: _Optional[str] = ..., scene_image_bytes: _Optional[bytes] = ..., scene_image_url: _Optional[str] = ..., scene_prompt: _Optional[str] = ..., bg_color: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., preserve_shadow: _Optional[bool] = ..., seed: _Optional[int] = ..., num_outputs: _Optional[int] = ..., output_format: _Optional[_Union[OutputFormat, str]] = ..., mode: _Optional[_Union[Mode, str]] = ..., harmonize: _Optional[float] = ..., shadow: _Optional[_Union[Shadow, str]] = ...) -> None: ...

class LightDirection(_message.Message):
    __slots__ = ("azimuth_deg", "strength")
    AZIMUTH_DEG_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    azimuth_deg: float
    strength: float
    def __init__(self, azimuth_deg: _Optional[float] = ..., strength: _Optional[float] = ...) -> None: ...

class Lighting(_message.Message):
    __slots__ = ("scene", "subject", "shadow", "harmonize")
    SCENE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    HARMONIZE_FIELD_NUMBER: _ClassVar[int]
    scene: LightDirection
    subject: LightDirection
    shadow: str
    harmonize: float
    def __init__(self, scene: _Optional[_Union[LightDirection, _Mapping]] = ..., subject: _Optional[_Union[LightDirection, _Mapping]] = ..., shadow: _Optional[str] = ..., harmonize: _Optional[float] = ...) -> None: ...

class ReplaceBackgroundResponse(_message.Message):
    __slots__ = ("id", "images", "width", "height", "seed", "credits_charged", "engines", "timings_ms", "notes", "lighting")
    class EnginesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CREDITS_CHARGED_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    LIGHTING_FIELD_NUMBER: _ClassVar[int]
    id: str
    images: _containers.RepeatedScalarFieldContainer[bytes]
    width: int
    height: int
    seed: int
    credits_charged: int
    engines: _containers.ScalarMap[str, str]
    timings_ms: _containers.ScalarMap[str, float]
    notes: _containers.RepeatedScalarFieldContainer[str]
    lighting: _containers.RepeatedCompositeFieldContainer[Lighting]
    def __init__(self, id: _Optional[str] = ..., images: _Optional[_Iterable[bytes]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., seed: _Optional[int] = ..., credits_charged: _Optional[int] = ..., engines: _Optional[_Mapping[str, str]] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., notes: _Optional[_Iterable[str]] = ..., lighting: _Optional[_Iterable[_Union[Lighting, _Mapping]]] = ...) -> None: ...

class RemoveBackgroundRequest(_message.Message):
    __slots__ = ("image_bytes", "image_url", "channels", "output_format")
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    image_bytes: bytes
    image_url: str
    channels: Channels
    output_format: OutputFormat
    def __init__(self, image_bytes: _Optional[bytes] = ..., image_url: _Optional[str] = ..., channels: _Optional[_Union[Channels, str]] = ..., output_format: _Optional[_Union[OutputFormat, str]] = ...) -> None: ...

class RemoveBackgroundResponse(_message.Message):
    __slots__ = ("image", "width", "height", "credits_charged", "engines")
    class EnginesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CREDITS_CHARGED_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    width: int
    height: int
    credits_charged: int
    engines: _containers.ScalarMap[str, str]
    def __init__(self, image: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., credits_charged: _Optional[int] = ..., engines: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SubmitPredictionRequest(_message.Message):
    __slots__ = ("model", "image_bytes", "image_url", "prompt", "seed", "output_format", "inline_output")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    INLINE_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    model: Model
    image_bytes: bytes
    image_url: str
    prompt: str
    seed: int
    output_format: OutputFormat
    inline_output: bool
    def __init__(self, model: _Optional[_Union[Model, str]] = ..., image_bytes: _Optional[bytes] = ..., image_url: _Optional[str] = ..., prompt: _Optional[str] = ..., seed: _Optional[int] = ..., output_format: _Optional[_Union[OutputFormat, str]] = ..., inline_output: _Optional[bool] = ...) -> None: ...

class GetPredictionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelPredictionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class PredictionError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("id", "model", "status", "output_urls", "output_images", "error", "credits_charged", "created_at", "started_at", "completed_at", "predict_time_s")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_URLS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREDITS_CHARGED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    PREDICT_TIME_S_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: Model
    status: PredictionStatus
    output_urls: _containers.RepeatedScalarFieldContainer[str]
    output_images: _containers.RepeatedScalarFieldContainer[bytes]
    error: PredictionError
    credits_charged: int
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    predict_time_s: float
    def __init__(self, id: _Optional[str] = ..., model: _Optional[_Union[Model, str]] = ..., status: _Optional[_Union[PredictionStatus, str]] = ..., output_urls: _Optional[_Iterable[str]] = ..., output_images: _Optional[_Iterable[bytes]] = ..., error: _Optional[_Union[PredictionError, _Mapping]] = ..., credits_charged: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predict_time_s: _Optional[float] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Balance(_message.Message):
    __slots__ = ("balance", "held", "available")
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    balance: int
    held: int
    available: int
    def __init__(self, balance: _Optional[int] = ..., held: _Optional[int] = ..., available: _Optional[int] = ...) -> None: ...
