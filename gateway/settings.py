"""All gateway settings: flags and `REPLATE_*` environment variables, typed, with units in the names."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REPLATE_", frozen=True)

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    grpc_port: int = Field(50051, ge=0, le=65535)
    data_dir: Path = Path(".replate")
    database_url: str = ""
    """SQLAlchemy async URL; empty means SQLite at <data_dir>/replate.db."""
    triton_url: str = ""
    """host:port of Triton's gRPC endpoint; empty means `replate serve` starts its own tritonserver."""
    triton_timeout_s: float = Field(300.0, gt=0)
    public_base_url: str = ""
    """Base of output URLs handed to clients; empty means the request's own base URL."""
    max_image_megapixels: float = Field(25.0, gt=0)
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0)
    price_replace_background: int = Field(5, ge=0)
    price_remove_background: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{self.data_dir / 'replate.db'}")
        return self

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"
