"""The credit ledger: hold at admission, capture on success, release on any failure.

Available = granted - held - captured, always >= 0: `hold_credits` reads the account's sums and writes the hold
while holding the account's lock (PostgreSQL: SELECT ... FOR UPDATE; SQLite: BEGIN IMMEDIATE, see db.py).
Every function here works inside the caller's transaction and never commits on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from sqlalchemy import ColumnElement, Select, bindparam, case, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from gateway.db import UNFINISHED_PREDICTION_STATUSES, Account, CreditEntry, Prediction
from gateway.errors import InsufficientCredits


@dataclass(frozen=True)
class Balance:
    balance: int
    """granted minus captured: what the account owns."""
    held: int
    """reserved by requests in flight."""

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(frozen=True)
class Hold:
    id: int
    account_id: int
    amount: int


@dataclass
class BalanceReport:
    """The available credits a request saw in its last committed ledger transaction, so that the response can carry
    them (`x-remaining-credits`) without reading the ledger again; None when nothing was committed yet."""

    available: int | None = None


_report: ContextVar[BalanceReport | None] = ContextVar("balance_report", default=None)


def start_balance_report() -> BalanceReport:
    """A fresh report for the request now being served; `report_balance` calls of this task (and of tasks it
    starts) fill it in."""
    report = BalanceReport()
    _report.set(report)
    return report


def report_balance(balance: Balance) -> None:
    """Call only once the transaction that read `balance` has ended, committed: a rolled back write must not be
    reported."""
    report = _report.get()
    if report is not None:
        report.available = balance.available


def _sum_of(kind: str):  # type: ignore[no-untyped-def]
    return func.coalesce(func.sum(case((CreditEntry.kind == kind, CreditEntry.amount), else_=0)), 0)


# The hot statements are built once: building one per call (and so its cache key) cost as much as running it.
_BALANCE = select(_sum_of("grant"), _sum_of("hold"), _sum_of("capture"), _sum_of("release")).where(
    CreditEntry.account_id == bindparam("account_id")
)
_LOCK_ACCOUNT = select(Account.id).where(Account.id == bindparam("account_id")).with_for_update()
_INSERT_ENTRY = insert(CreditEntry.__table__).returning(CreditEntry.id)


async def get_balance(session: AsyncSession, account_id: int) -> Balance:
    granted, held, captured, released = (await session.execute(_BALANCE, {"account_id": account_id})).one()
    return Balance(balance=granted - captured, held=held - captured - released)


async def available_credits(sessions: async_sessionmaker[AsyncSession], account_id: int, report: BalanceReport) -> int:
    """What the request reported, else a fresh read of the ledger."""
    if report.available is not None:
        return report.available
    async with sessions() as session:
        return (await get_balance(session, account_id)).available


async def _lock_account(session: AsyncSession, account_id: int) -> None:
    if session.get_bind().dialect.name == "sqlite":
        return  # SQLite has no row locks; BEGIN IMMEDIATE (db.py) already holds the database's write lock
    await session.execute(_LOCK_ACCOUNT, {"account_id": account_id})


async def grant_credits(session: AsyncSession, account_id: int, amount: int, *, reason: str = "grant") -> None:
    if amount <= 0:
        raise ValueError("a grant must be positive")
    session.add(CreditEntry(account_id=account_id, kind="grant", amount=amount, operation=reason))
    await session.flush()


async def hold_credits(
    session: AsyncSession, account_id: int, amount: int, *, operation: str, request_id: str = ""
) -> Hold:
    """Reserve `amount` credits or raise InsufficientCredits; nothing else is written then."""
    await _lock_account(session, account_id)
    available = (await get_balance(session, account_id)).available
    if available < amount:
        raise InsufficientCredits(
            f"Not enough credits: this request costs {amount} and {available} are available; buy or grant more"
        )
    hold_id = await _insert_entry(
        session, account_id=account_id, kind="hold", amount=amount, operation=operation, request_id=request_id
    )
    return Hold(id=hold_id, account_id=account_id, amount=amount)


async def capture_hold(session: AsyncSession, hold: Hold) -> Balance:
    """Turn the hold into a charge; returns the account's balance after it. A hold is settled exactly once (unique
    index on hold_id)."""
    await _settle(session, hold, "capture")
    return await get_balance(session, hold.account_id)


async def release_hold(session: AsyncSession, hold: Hold) -> None:
    """Give the held credits back: the request failed, nothing is charged."""
    await _settle(session, hold, "release")


async def _settle(session: AsyncSession, hold: Hold, kind: str) -> None:
    await _insert_entry(session, account_id=hold.account_id, kind=kind, amount=hold.amount, hold_id=hold.id)


async def _insert_entry(session: AsyncSession, **values: object) -> int:
    """A Core INSERT: the hot path skips the ORM's unit of work (this runs twice per billed request)."""
    return (await session.execute(_INSERT_ENTRY, values)).scalar_one()


@asynccontextmanager
async def charge(
    sessions: async_sessionmaker[AsyncSession], account_id: int, amount: int, *, operation: str, request_id: str = ""
) -> AsyncIterator[Hold]:
    """Hold `amount` for the block; capture it if the block succeeds, release it on any failure, cancellation
    included (the release is shielded, so a client that hangs up cannot leave credits held)."""
    async with sessions.begin() as session:
        hold = await hold_credits(session, account_id, amount, operation=operation, request_id=request_id)
    try:
        yield hold
    except BaseException:
        with anyio.CancelScope(shield=True):
            async with sessions.begin() as session:
                await release_hold(session, hold)
        raise
    async with sessions.begin() as session:
        balance = await capture_hold(session, hold)
    report_balance(balance)


def unsettled_holds(*columns: ColumnElement[Any]) -> Select[Any]:
    """SELECT columns of the holds that have been neither captured nor released."""
    settlement = aliased(CreditEntry)
    return (
        select(*columns)
        .outerjoin(settlement, settlement.hold_id == CreditEntry.id)
        .where(CreditEntry.kind == "hold", settlement.id.is_(None))
    )


async def release_stale_holds(session: AsyncSession, created_before: datetime) -> int:
    """Release holds that nobody settled: their gateway died between hold and capture/release. Only holds older
    than any request can live (the Triton deadline plus a margin) are touched, so no live request loses its hold;
    a queued or running prediction's hold is its worker's to settle, however old."""
    pending_predictions = select(Prediction.hold_id).where(Prediction.status.in_(UNFINISHED_PREDICTION_STATUSES))
    stale = (
        await session.execute(
            unsettled_holds(CreditEntry.id, CreditEntry.account_id, CreditEntry.amount).where(
                CreditEntry.created_at < created_before, CreditEntry.id.not_in(pending_predictions)
            )
        )
    ).all()
    for hold_id, account_id, amount in stale:
        await release_hold(session, Hold(id=hold_id, account_id=account_id, amount=amount))
    return len(stale)
