"""The credit ledger: hold at admission, capture on success, release on any failure.

Available = granted - held - captured, always >= 0: `hold_credits` reads the account's sums and writes the hold
while holding the account's lock (PostgreSQL: SELECT ... FOR UPDATE; SQLite: BEGIN IMMEDIATE, see db.py).
Every function here works inside the caller's transaction and never commits on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from sqlalchemy import ColumnElement, Select, case, func, select
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


def _sum_of(kind: str):  # type: ignore[no-untyped-def]
    return func.coalesce(func.sum(case((CreditEntry.kind == kind, CreditEntry.amount), else_=0)), 0)


async def get_balance(session: AsyncSession, account_id: int) -> Balance:
    granted, held, captured, released = (
        await session.execute(
            select(_sum_of("grant"), _sum_of("hold"), _sum_of("capture"), _sum_of("release")).where(
                CreditEntry.account_id == account_id
            )
        )
    ).one()
    return Balance(balance=granted - captured, held=held - captured - released)


async def _lock_account(session: AsyncSession, account_id: int) -> None:
    await session.execute(select(Account.id).where(Account.id == account_id).with_for_update())


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
    entry = CreditEntry(account_id=account_id, kind="hold", amount=amount, operation=operation, request_id=request_id)
    session.add(entry)
    await session.flush()
    return Hold(id=entry.id, account_id=account_id, amount=amount)


async def capture_hold(session: AsyncSession, hold: Hold) -> None:
    """Turn the hold into a charge. A hold is settled exactly once (unique index on hold_id)."""
    await _settle(session, hold, "capture")


async def release_hold(session: AsyncSession, hold: Hold) -> None:
    """Give the held credits back: the request failed, nothing is charged."""
    await _settle(session, hold, "release")


async def _settle(session: AsyncSession, hold: Hold, kind: str) -> None:
    session.add(CreditEntry(account_id=hold.account_id, kind=kind, amount=hold.amount, hold_id=hold.id))
    await session.flush()


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
        await capture_hold(session, hold)


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
