import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import Connection, func, make_url, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

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
    unsettled_holds,
)
from gateway.db import Account, CreditEntry, Transactions, create_engine, create_sessionmaker, reading, utcnow
from gateway.errors import InsufficientCredits
from gateway.settings import Settings

SECRET = b"test-api-key-secret"
T = TypeVar("T")


@pytest.fixture
async def engine(db_settings: Settings):
    engine = create_engine(db_settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine):
    return create_sessionmaker(engine)


@pytest.fixture
async def transactions(engine):
    transactions = Transactions(engine)
    yield transactions
    await transactions.dispose()


async def new_account(sessions, credits: int) -> int:
    async with sessions.begin() as session:
        account_id = (await create_account_key(session, f"acct-{uuid.uuid4().hex[:8]}", SECRET)).account_id
        await session.run_sync(grant_credits, account_id, credits)
    return account_id


async def balance_of(sessions, account_id: int):
    async with sessions() as session:
        return await session.run_sync(get_balance, account_id)


async def test_hold_then_capture_charges_once(sessions) -> None:
    account = await new_account(sessions, 10)
    async with sessions.begin() as session:
        hold = await session.run_sync(hold_credits, account, 4, operation="test")
    assert (await balance_of(sessions, account)).available == 6
    assert (await balance_of(sessions, account)).held == 4
    async with sessions.begin() as session:
        await session.run_sync(capture_hold, hold)
    final = await balance_of(sessions, account)
    assert (final.balance, final.held, final.available) == (6, 0, 6)


async def test_release_gives_everything_back(sessions) -> None:
    account = await new_account(sessions, 10)
    async with sessions.begin() as session:
        hold = await session.run_sync(hold_credits, account, 10, operation="test")
        await session.run_sync(release_hold, hold)
    final = await balance_of(sessions, account)
    assert (final.balance, final.held, final.available) == (10, 0, 10)


async def test_hold_beyond_available_is_refused_and_writes_nothing(sessions) -> None:
    account = await new_account(sessions, 3)
    with pytest.raises(InsufficientCredits, match="costs 5 and 3 are available"):
        async with sessions.begin() as session:
            await session.run_sync(hold_credits, account, 5, operation="test")
    async with sessions() as session:
        kinds = (await session.execute(select(CreditEntry.kind).where(CreditEntry.account_id == account))).scalars()
        assert list(kinds) == ["grant"]


async def test_a_hold_cannot_be_settled_twice(sessions) -> None:
    account = await new_account(sessions, 10)
    async with sessions.begin() as session:
        hold = await session.run_sync(hold_credits, account, 5, operation="test")
        await session.run_sync(capture_hold, hold)
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            await session.run_sync(release_hold, hold)
    assert (await balance_of(sessions, account)).available == 5


async def test_charge_captures_on_success_and_releases_on_failure(transactions, sessions) -> None:
    account = await new_account(sessions, 10)
    async with charge(transactions, account, 3, operation="test"):
        pass
    with pytest.raises(RuntimeError):
        async with charge(transactions, account, 3, operation="test"):
            raise RuntimeError("inference failed")
    final = await balance_of(sessions, account)
    assert (final.balance, final.held) == (7, 0)


async def test_charge_reports_the_balance_after_its_capture_or_its_release(transactions, sessions) -> None:
    account = await new_account(sessions, 10)
    report = start_balance_report()
    async with charge(transactions, account, 3, operation="test"):
        assert report.available is None  # a hold is not reported: it may yet be released
    assert report.available == (await balance_of(sessions, account)).available == 7
    failed = start_balance_report()
    with pytest.raises(RuntimeError):
        async with charge(transactions, account, 3, operation="test"):
            raise RuntimeError("inference failed")
    assert failed.available == (await balance_of(sessions, account)).available == 7


async def test_available_credits_reads_the_ledger_only_without_a_report(engine, sessions) -> None:
    class NoDatabase:
        def connect(self) -> None:
            raise AssertionError("a reported balance must not be read again")

    assert await available_credits(NoDatabase(), 1, BalanceReport(available=12)) == 12  # type: ignore[arg-type]
    account = await new_account(sessions, 10)
    assert await available_credits(reading(engine), account, BalanceReport()) == 10


def sqlite_rules(connection: Connection) -> tuple[str, int, int]:
    return tuple(connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in SQLITE_RULES)  # type: ignore[return-value]


SQLITE_RULES = ("journal_mode", "synchronous", "foreign_keys")


async def test_sqlite_commits_without_fsync_in_wal_mode(settings: Settings) -> None:
    """The async engine and the thread of `Transactions` connect alike: WAL, synchronous NORMAL (1), foreign keys."""
    engine = create_engine(settings.database_url)
    transactions = Transactions(engine)
    async with engine.connect() as connection:
        on_the_engine = await connection.run_sync(sqlite_rules)
    in_the_thread = await transactions.run(sqlite_rules)
    await transactions.dispose()
    await engine.dispose()
    assert on_the_engine == in_the_thread == ("wal", 1, 1)


async def test_a_sqlite_transaction_in_the_thread_takes_the_write_lock_up_front(settings: Settings) -> None:
    """BEGIN IMMEDIATE, as on the async engine: no other writer gets in between its read and its write."""
    engine = create_engine(settings.database_url)
    transactions = Transactions(engine)

    def another_writer_gets_in(connection: Connection) -> bool:
        other = sqlite3.connect(make_url(settings.database_url).database, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return False
        finally:
            other.close()
        return True

    assert await transactions.run(another_writer_gets_in) is False
    await transactions.dispose()
    await engine.dispose()


async def test_charge_releases_when_cancelled(transactions, sessions) -> None:
    account = await new_account(sessions, 10)
    entered = asyncio.Event()

    async def slow_request() -> None:
        async with charge(transactions, account, 4, operation="test"):
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


class CancelDuring(Transactions):
    """Cancels `victim` as the unit of work named `work_name` starts: the cancellation lands while it runs."""

    def __init__(self, engine: AsyncEngine, work_name: str) -> None:
        super().__init__(engine)
        self.work_name = work_name
        self.victim: asyncio.Task[None] | None = None

    async def run(self, work: Callable[..., T], *args: object, **kwargs: object) -> T:
        if work.__name__ == self.work_name and self.victim is not None:
            self.victim.cancel()
        return await super().run(work, *args, **kwargs)


async def ledger_state(sessions, account_id: int) -> tuple[Balance, int, dict]:
    """The account's balance, the open holds of the whole ledger, the ledger's mismatches."""
    async with sessions() as session:
        open_holds = (await session.execute(unsettled_holds(func.count(CreditEntry.id)))).scalar_one()
        return await session.run_sync(get_balance, account_id), open_holds, await session.run_sync(ledger_mismatches)


@pytest.mark.parametrize(
    ("cancelled_during", "balance_after"), [("hold_credits", 10), ("capture_hold", 6), ("release_hold", 10)]
)
async def test_a_request_cancelled_during_a_ledger_transaction_leaves_no_hold_open(
    engine, sessions, cancelled_during: str, balance_after: int
) -> None:
    """A cancellation landing while the hold is written releases it; one landing while the capture or the release
    is written waits for it. The cancellation goes on in each case."""
    account = await new_account(sessions, 10)
    transactions = CancelDuring(engine, cancelled_during)

    async def request() -> None:
        async with charge(transactions, account, 4, operation="test"):
            if cancelled_during == "release_hold":
                raise RuntimeError("inference failed")

    transactions.victim = asyncio.create_task(request())
    with pytest.raises(asyncio.CancelledError):
        await transactions.victim
    await transactions.dispose()
    assert await ledger_state(sessions, account) == (Balance(balance_after, 0), 0, {})


async def test_a_second_cancellation_does_not_stop_the_release(engine, sessions) -> None:
    """A request cancelled mid-inference is cancelled again while its hold is released (a client gone, then the
    shutdown grace running out): the release still commits."""
    account = await new_account(sessions, 10)
    transactions = CancelDuring(engine, "release_hold")
    entered = asyncio.Event()

    async def slow_request() -> None:
        async with charge(transactions, account, 4, operation="test"):
            entered.set()
            await asyncio.sleep(30)

    transactions.victim = asyncio.create_task(slow_request())
    await entered.wait()
    transactions.victim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await transactions.victim
    await transactions.dispose()
    assert await ledger_state(sessions, account) == (Balance(10, 0), 0, {})


async def test_concurrent_charges_never_overdraw(engine, transactions, sessions) -> None:
    """Holds taken at once through `Transactions` (on SQLite its own thread and engine) and through the async
    engine's sessions (predictions) share one account's credits without overdrawing it."""
    account = await new_account(sessions, 50)

    async def try_hold(through_transactions: bool) -> bool:
        try:
            if through_transactions:
                await transactions.run(hold_credits, account, 5, operation="test")
            else:
                async with sessions.begin() as session:
                    await session.run_sync(hold_credits, account, 5, operation="test")
        except InsufficientCredits:
            return False
        return True

    results = await asyncio.gather(*(try_hold(i % 2 == 0) for i in range(60)))
    assert sum(results) == 10
    assert await ledger_state(sessions, account) == (Balance(50, 50), 10, {})


async def test_stale_holds_are_released_and_fresh_ones_kept(sessions) -> None:
    account = await new_account(sessions, 30)
    async with sessions.begin() as session:
        abandoned = await session.run_sync(hold_credits, account, 10, operation="test")
        settled = await session.run_sync(hold_credits, account, 5, operation="test")
        await session.run_sync(capture_hold, settled)
        (await session.get(CreditEntry, abandoned.id)).created_at = utcnow() - timedelta(hours=1)
        (await session.get(CreditEntry, settled.id)).created_at = utcnow() - timedelta(hours=1)
        await session.run_sync(hold_credits, account, 7, operation="test")  # a live request's hold
    async with sessions.begin() as session:
        assert await session.run_sync(release_stale_holds, utcnow() - timedelta(minutes=10)) == 1
    async with sessions.begin() as session:
        assert await session.run_sync(release_stale_holds, utcnow() - timedelta(minutes=10)) == 0
    final = await balance_of(sessions, account)
    assert (final.balance, final.held, final.available) == (25, 7, 18)


async def test_the_kept_balances_agree_with_the_journal(transactions, sessions) -> None:
    account = await new_account(sessions, 20)
    async with charge(transactions, account, 3, operation="test"):
        pass
    with pytest.raises(RuntimeError):
        async with charge(transactions, account, 4, operation="test"):
            raise RuntimeError("inference failed")
    async with sessions.begin() as session:
        await session.run_sync(hold_credits, account, 5, operation="test")  # still in flight
        assert await session.run_sync(ledger_mismatches) == {}
        await session.execute(
            update(Account).where(Account.id == account).values(held=0)
        )  # a write that skips the journal
        assert await session.run_sync(ledger_mismatches) == {account: (Balance(17, 0), Balance(17, 5))}
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
        await writing.run_sync(hold_credits, account, 4, operation="test")  # holds the write lock until the block ends
        async with reading(engine).connect() as connection:
            seen = await asyncio.wait_for(connection.run_sync(get_balance, account), timeout=5)
    assert seen.available == 10  # the hold was not committed when the read ran
