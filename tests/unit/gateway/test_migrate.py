from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from gateway.db import Base
from gateway.settings import Settings


def test_migrations_match_the_models(settings: Settings) -> None:
    sync_url = settings.database_url.replace("+aiosqlite", "")
    engine = create_engine(sync_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []
