from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.db import Base, create_engine
from gateway.settings import Settings


async def test_migrations_match_the_models(db_settings: Settings) -> None:
    engine = create_engine(db_settings.database_url)
    async with engine.connect() as connection:
        diff = await connection.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    await engine.dispose()
    assert diff == []
