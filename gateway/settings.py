"""All gateway settings: flags and `REPLATE_*` environment variables, typed, with units in the names."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from replate.models import DEFAULT_MODELS_DIR


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REPLATE_", frozen=True)

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    grpc_port: int = Field(50051, ge=0, le=65535)
    data_dir: Path = Path(".replate")
    database_url: str = ""
    """SQLAlchemy async URL; empty means SQLite at <data_dir>/replate.db."""
    models_dir: Path = DEFAULT_MODELS_DIR
    """Model weights fetched by `replate models pull` (outside the repository); the Triton we start reads them."""
    triton_url: str = ""
    """host:port of Triton's gRPC endpoint; empty means `replate serve` starts its own tritonserver."""
    triton_timeout_s: float = Field(300.0, gt=0)
    public_base_url: str = ""
    """Base of output URLs handed to clients; empty means the request's own base URL."""
    max_image_megapixels: float = Field(25.0, gt=0)
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0)
    price_replace_background: int = Field(5, ge=0)
    price_remove_background: int = Field(1, ge=0)
    prediction_workers: int = Field(2, ge=0)
    """Asynchronous prediction workers in this gateway process (0: this replica only accepts and reports jobs)."""
    prediction_lease_s: float = Field(30.0, gt=0)
    """How long a worker owns a job without renewing; a dead worker's jobs are taken over after this."""
    url_allowed_hosts: list[str] = Field(default_factory=list)
    """Host names or CIDR networks that image URLs may reach although they are private (e.g. an internal MinIO)."""
    url_connect_timeout_s: float = Field(5.0, gt=0)
    url_read_timeout_s: float = Field(15.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    storage: Literal["local", "s3"] = "local"
    output_url_ttl_s: float = Field(24 * 3600, gt=0)
    """How long an output URL works."""
    output_retention_s: float = Field(24 * 3600, gt=0)
    """Local outputs older than this are deleted (S3: use a bucket lifecycle rule)."""
    url_signing_secret: str = ""
    """HMAC key of local output URLs; empty means a random key kept in <data_dir>. Set it when replicas share a
    storage folder, so that any replica can serve any URL."""
    s3_bucket: str = ""
    s3_prefix: str = "outputs/"
    s3_endpoint_url: str = ""
    """For MinIO and other S3-compatible stores; empty means AWS."""
    s3_region: str = ""

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{self.data_dir / 'replate.db'}")
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("REPLATE_S3_BUCKET is required when REPLATE_STORAGE=s3")
        return self

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"
