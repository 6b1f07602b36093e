"""Alembic, configured from code (no alembic.ini): `replate db upgrade` and `upgrade_database()` use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Synchronous: call it outside a running event loop (or in a thread)."""
    command.upgrade(alembic_config(database_url), revision)
