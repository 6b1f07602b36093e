import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from gateway.db import Base, create_engine
from gateway.migrate import upgrade_database
from gateway.settings import Settings


async def test_migrations_match_the_models(db_settings: Settings) -> None:
    engine = create_engine(db_settings.database_url)
    async with engine.connect() as connection:
        diff = await connection.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    await engine.dispose()
    assert diff == []


def test_balances_are_backfilled_from_the_journal(tmp_path, request) -> None:
    """0003 adds the accounts' balance columns: they start equal to the journal's sums, on both databases."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    for database_url in (url, request.getfixturevalue("postgres_url")):
        upgrade_database(database_url, "0002")
        asyncio.run(_execute(database_url, JOURNAL_BEFORE_0003))
        upgrade_database(database_url)
        assert asyncio.run(_balances(database_url)) == [(1, 7, 2)]  # granted 10, captured 3; held 5 - 3 released


JOURNAL_BEFORE_0003 = (
    "INSERT INTO accounts (id, name, created_at) VALUES (1, 'old', CURRENT_TIMESTAMP)",
    *(
        "INSERT INTO credit_entries (id, account_id, kind, amount, hold_id, operation, request_id, created_at)"
        f" VALUES ({entry_id}, 1, '{kind}', {amount}, {hold_id}, '', '', CURRENT_TIMESTAMP)"
        for entry_id, kind, amount, hold_id in (
            (1, "grant", 10, "NULL"),
            (2, "hold", 3, "NULL"),
            (3, "capture", 3, 2),
            (4, "hold", 2, "NULL"),  # in flight
            (5, "hold", 3, "NULL"),
            (6, "release", 3, 5),
        )
    ),
)


async def _execute(database_url: str, statements: tuple[str, ...]) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))
    await engine.dispose()


async def _balances(database_url: str) -> list[tuple[int, int, int]]:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, balance, held FROM accounts"))).all()
    await engine.dispose()
    return [tuple(row) for row in rows]
