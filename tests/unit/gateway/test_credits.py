import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gateway.auth import create_account_key
from gateway.credits import (
    Balance,
    BalanceReport,
    available_credits,
    capture_hold,
    charge,
    get_balance,
    grant_credits,
    hold_credits,
    ledger_mismatches,
    release_hold,
    release_stale_holds,
    start_balance_report,
)
from gateway.db import Account, CreditEntry, create_engine, create_sessionmaker, reading, utcnow
from gateway.errors import InsufficientCredits
from gateway.settings import Settings

SECRET = b"test-api-key-secret"


@pytest.fixture
async def engine(db_settings: Settings):
    engine = create_engine(db_settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine):
    return create_sessionmaker(engine)


async def new_account(sessions, credits: int) -> int:
    async with sessions.begin() as session:
        account_id = (await create_account_key(session, f"acct-{uuid.uuid4().hex[:8]}", SECRET)).account_id
        await grant_credits(session, account_id, credits)
    return account_id


async def balance_of(sessions, account_id: int):
    async with sessions() as session:
        return await get_balance(session, account_id)


async def test_hold_then_capture_charges_once(sessions) -> None:
    account = await new_account(sessions, 10)
    async with sessions.begin() as session:
        hold = await hold_credits(session, account, 4, operation="test")
    assert (await balance_of(sessions, account)).available == 6
    assert (await balance_of(sessions, account)).held == 4
    async with sessions.begin() as session:
        await capture_hold(session, hold)
    final = await balance_of(sessions, account)
    assert (final.balance, final.held, final.available) == (6, 0, 6)


async def test_release_gives_everything_back(sessions) -> None:
    account = await new_account(sessions, 10)
    async with sessions.begin() as session:
        hold = await hold_credits(session, account, 10, operation="test")
        await release_hold(session, hold)
    final = await balance_of(sessions, account)
    assert (final.balance, final.held, final.available) == (10, 0, 10)


async def test_hold_beyond_available_is_refused_and_writes_nothing(sessions) -> None:
    account = await new_account(sessions, 3)
    with pytest.raises(InsufficientCredits, match="costs 5 and 3 are available"):
        async with sessions.begin() as session:
            await hold_credits(session, account, 5, operation="test")
    async with sessions() as session:
        kinds = (await session.execute(select(CreditEntry.kind).where(CreditEntry.account_id == account))).scalars()
        assert list(kinds) == ["grant"]


async def test_a_hold_cannot_be_settled_twice(sessions) -> None:
    account = await new_account(sessions, 10)
    async with sessions.begin() as session:
        hold = await hold_credits(session, account, 5, operation="test")
        await capture_hold(session, hold)
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            await release_hold(session, hold)
    assert (await balance_of(sessions, account)).available == 5


async def test_charge_captures_on_success_and_releases_on_failure(engine, sessions) -> None:
    account = await new_account(sessions, 10)
    async with charge(engine, account, 3, operation="test"):
        pass
    with pytest.raises(RuntimeError):
        async with charge(engine, account, 3, operation="test"):
            raise RuntimeError("inference failed")
    final = await balance_of(sessions, account)
    assert (final.balance, final.held) == (7, 0)


async def test_charge_reports_the_balance_after_its_capture_or_its_release(engine, sessions) -> None:
    account = await new_account(sessions, 10)
    report = start_balance_report()
    async with charge(engine, account, 3, operation="test"):
        assert report.available is None  # a hold is not reported: it may yet be released
    assert report.available == (await balance_of(sessions, account)).available == 7
    failed = start_balance_report()
    with pytest.raises(RuntimeError):
        async with charge(engine, account, 3, operation="test"):
            raise RuntimeError("inference failed")
    assert failed.available == (await balance_of(sessions, account)).available == 7


async def test_available_credits_reads_the_ledger_only_without_a_report(engine, sessions) -> None:
    class NoDatabase:
        def connect(self) -> None:
            raise AssertionError("a reported balance must not be read again")

    assert await available_credits(NoDatabase(), 1, BalanceReport(available=12)) == 12  # type: ignore[arg-type]
    account = await new_account(sessions, 10)
    assert await available_credits(reading(engine), account, BalanceReport()) == 10


async def test_sqlite_commits_without_fsync_in_wal_mode(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    async with engine.connect() as connection:
        journal_mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
        synchronous = (await connection.exec_driver_sql("PRAGMA synchronous")).scalar()
    await engine.dispose()
    assert (journal_mode, synchronous) == ("wal", 1)  # 1: NORMAL


async def test_charge_releases_when_cancelled(engine, sessions) -> None:
    account = await new_account(sessions, 10)
    entered = asyncio.Event()

    async def slow_request() -> None:
        async with charge(engine, account, 4, operation="test"):
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow_request())
    await entered.wait()
    assert (await balance_of(sessions, account)).held == 4
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    final = await balance_of(sessions, account)
    assert (final.balance, final.held) == (10, 0)


async def test_concurrent_holds_never_overdraw(sessions) -> None:
    account = await new_account(sessions, 50)

    async def try_hold() -> bool:
        try:
            async with sessions.begin() as session:
                await hold_credits(session, account, 5, operation="test")
        except InsufficientCredits:
            return False
        return True

    results = await asyncio.gather(*(try_hold() for _ in range(60)))
    assert sum(results) == 10
    final = await balance_of(sessions, account)
    assert (final.available, final.held) == (0, 50)


async def test_stale_holds_are_released_and_fresh_ones_kept(sessions) -> None:
    account = await new_account(sessions, 30)
    async with sessions.begin() as session:
        abandoned = await hold_credits(session, account, 10, operation="test")
        settled = await hold_credits(session, account, 5, operation="test")
        await capture_hold(session, settled)
        (await session.get(CreditEntry, abandoned.id)).created_at = utcnow() - timedelta(hours=1)
        (await session.get(CreditEntry, settled.id)).created_at = utcnow() - timedelta(hours=1)
        await hold_credits(session, account, 7, operation="test")  # a live request's hold
    async with sessions.begin() as session:
        assert await release_stale_holds(session, utcnow() - timedelta(minutes=10)) == 1
    async with sessions.begin() as session:
        assert await release_stale_holds(session, utcnow() - timedelta(minutes=10)) == 0
    final = await balance_of(sessions, account)
    assert (final.balance, final.held, final.available) == (25, 7, 18)


async def test_the_kept_balances_agree_with_the_journal(engine, sessions) -> None:
    account = await new_account(sessions, 20)
    async with charge(engine, account, 3, operation="test"):
        pass
    with pytest.raises(RuntimeError):
        async with charge(engine, account, 4, operation="test"):
            raise RuntimeError("inference failed")
    async with sessions.begin() as session:
        await hold_credits(session, account, 5, operation="test")  # still in flight
        assert await ledger_mismatches(session) == {}
        await session.execute(
            update(Account).where(Account.id == account).values(held=0)
        )  # a write that skips the journal
        assert await ledger_mismatches(session) == {account: (Balance(17, 0), Balance(17, 5))}
        await session.rollback()


async def test_the_database_refuses_a_negative_available_balance(sessions) -> None:
    account = await new_account(sessions, 5)
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            await session.execute(update(Account).where(Account.id == account).values(held=6))


async def test_a_read_does_not_wait_for_a_writer(engine, sessions) -> None:
    """Reading sessions take no write lock on SQLite: an API key check or a balance read is not queued behind a
    request's ledger transaction."""
    account = await new_account(sessions, 10)
    async with sessions.begin() as writing:
        await hold_credits(writing, account, 4, operation="test")  # holds the write lock until the block ends
        async with reading(engine).connect() as connection:
            seen = await asyncio.wait_for(get_balance(connection, account), timeout=5)
    assert seen.available == 10  # the hold was not committed when the read ran
