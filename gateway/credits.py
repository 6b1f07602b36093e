"""The credit ledger: hold at admission, capture on success, release on any failure.

Every movement is a journal entry (append-only, the record) and, in the same transaction, a change of the account's
`balance` and `held` columns (the journal's sums, kept so that a balance costs one row to read; `ledger_mismatches`
checks that the two agree). Available = balance - held, always >= 0 (a check constraint, and `hold_credits` moves
credits only while enough are available, in one conditional UPDATE). Every function here is a synchronous unit of
work inside the caller's transaction and never commits on its own: async code runs it whole with
`AsyncConnection.run_sync` / `AsyncSession.run_sync`, or `db.Transactions.run` (the request path: one thread hop per
transaction on SQLite, none on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Executable

from gateway._tasks import run_or_undo, run_to_end
from gateway.db import ENTRY_KINDS, UNFINISHED_PREDICTION_STATUSES, Account, CreditEntry, Prediction, Transactions
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


Database = Connection | Session
"""Where ledger statements run: a Core connection on the request path (cheaper), the ORM session of a caller that
also writes ORM objects in the same transaction (predictions)."""


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


# The hot statements are built once: building one per call (and so its cache key) cost as much as running it.
_ACCOUNTS = Account.__table__
_BALANCE = select(_ACCOUNTS.c.balance, _ACCOUNTS.c.held).where(_ACCOUNTS.c.id == bindparam("account_id"))
_MOVE = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.id == bindparam("account_id"))
    .values(balance=_ACCOUNTS.c.balance + bindparam("to_balance"), held=_ACCOUNTS.c.held + bindparam("to_held"))
    .returning(_ACCOUNTS.c.balance, _ACCOUNTS.c.held)
)
_HOLD = _MOVE.where(_ACCOUNTS.c.balance - _ACCOUNTS.c.held >= bindparam("to_held"))
"""A hold moves credits only while enough are available: the check and the write are one atomic statement (the
row's lock on PostgreSQL, the database's write lock on SQLite), so concurrent holds can never overdraw."""
_INSERT_ENTRY = insert(CreditEntry.__table__).returning(CreditEntry.id)
_JOURNAL_SUMS = select(
    CreditEntry.account_id,
    *(
        func.coalesce(func.sum(case((CreditEntry.kind == kind, CreditEntry.amount), else_=0)), 0)
        for kind in ENTRY_KINDS
    ),
).group_by(CreditEntry.account_id)


def get_balance(session: Database, account_id: int) -> Balance:
    row = session.execute(_BALANCE, {"account_id": account_id}).one_or_none()
    return Balance(balance=row.balance, held=row.held) if row else Balance(balance=0, held=0)


async def available_credits(reader: AsyncEngine, account_id: int, report: BalanceReport) -> int:
    """What the request reported, else a fresh read of the ledger."""
    if report.available is not None:
        return report.available
    async with reader.connect() as connection:
        return (await connection.run_sync(get_balance, account_id)).available


def _move(
    session: Database, account_id: int, *, to_balance: int = 0, to_held: int = 0, statement: Executable = _MOVE
) -> Balance | None:
    """Change the account's balance and held credits; the balance after, or None when `statement`'s condition
    left the row alone."""
    values = {"account_id": account_id, "to_balance": to_balance, "to_held": to_held}
    row = session.execute(statement, values).one_or_none()
    return Balance(balance=row.balance, held=row.held) if row else None


def grant_credits(session: Database, account_id: int, amount: int, *, reason: str = "grant") -> Balance:
    if amount <= 0:
        raise ValueError("a grant must be positive")
    _insert_entry(session, account_id=account_id, kind="grant", amount=amount, operation=reason)
    balance = _move(session, account_id, to_balance=amount)
    assert balance is not None, "the account exists: its journal entry was just written"
    return balance


def hold_credits(session: Database, account_id: int, amount: int, *, operation: str, request_id: str = "") -> Hold:
    """Reserve `amount` credits or raise InsufficientCredits; nothing is written then."""
    if _move(session, account_id, to_held=amount, statement=_HOLD) is None:
        available = get_balance(session, account_id).available
        raise InsufficientCredits(
            f"Not enough credits: this request costs {amount} and {available} are available; buy or grant more"
        )
    hold_id = _insert_entry(
        session, account_id=account_id, kind="hold", amount=amount, operation=operation, request_id=request_id
    )
    return Hold(id=hold_id, account_id=account_id, amount=amount)


def capture_hold(session: Database, hold: Hold) -> Balance:
    """Turn the hold into a charge; returns the account's balance after it. A hold is settled exactly once (unique
    index on hold_id: a second settlement fails before any balance moves)."""
    return _settle(session, hold, "capture", to_balance=-hold.amount)


def release_hold(session: Database, hold: Hold) -> Balance:
    """Give the held credits back: the request failed, nothing is charged."""
    return _settle(session, hold, "release", to_balance=0)


def _settle(session: Database, hold: Hold, kind: str, *, to_balance: int) -> Balance:
    _insert_entry(session, account_id=hold.account_id, kind=kind, amount=hold.amount, hold_id=hold.id)
    balance = _move(session, hold.account_id, to_balance=to_balance, to_held=-hold.amount)
    assert balance is not None, "the account exists: it holds this hold"
    return balance


def _insert_entry(session: Database, **values: object) -> int:
    """A Core INSERT: the hot path skips the ORM's unit of work (this runs twice per billed request)."""
    return session.execute(_INSERT_ENTRY, values).scalar_one()


def ledger_mismatches(session: Database) -> dict[int, tuple[Balance, Balance]]:
    """Accounts whose balance and held credits differ from their journal's sums: {account: (kept, journal)}. Empty
    when the ledger is consistent."""
    accounts = session.execute(select(Account.id, Account.balance, Account.held))
    kept = {account_id: Balance(balance, held) for account_id, balance, held in accounts}
    sums: dict[int, Balance] = {}
    for account_id, granted, held, captured, released in session.execute(_JOURNAL_SUMS):
        sums[account_id] = Balance(balance=granted - captured, held=held - captured - released)
    empty = Balance(0, 0)
    return {
        account_id: (kept.get(account_id, empty), sums.get(account_id, empty))
        for account_id in kept.keys() | sums.keys()
        if kept.get(account_id, empty) != sums.get(account_id, empty)
    }


@asynccontextmanager
async def charge(
    transactions: Transactions, account_id: int, amount: int, *, operation: str, request_id: str = ""
) -> AsyncIterator[Hold]:
    """Hold `amount` for the block; capture it if the block succeeds, release it on any failure, cancellation
    included. Each transaction runs to its end whatever happens to the request meanwhile (a database thread commits
    whatever its caller does): a request cancelled while its hold is written releases the hold before the
    cancellation goes on, one cancelled while it settles waits for the settlement, so no hold is left open."""
    hold = await run_or_undo(
        transactions.run(hold_credits, account_id, amount, operation=operation, request_id=request_id),
        lambda hold: _settle_to_end(transactions, release_hold, hold),
    )
    try:
        yield hold
    except BaseException:
        await _settle_to_end(transactions, release_hold, hold)
        raise
    await _settle_to_end(transactions, capture_hold, hold)


async def _settle_to_end(transactions: Transactions, settle: Callable[[Database, Hold], Balance], hold: Hold) -> None:
    report_balance(await run_to_end(transactions.run(settle, hold)))


def unsettled_holds(*columns: ColumnElement[Any]) -> Select[Any]:
    """SELECT columns of the holds that have been neither captured nor released."""
    settlement = aliased(CreditEntry)
    return (
        select(*columns)
        .outerjoin(settlement, settlement.hold_id == CreditEntry.id)
        .where(CreditEntry.kind == "hold", settlement.id.is_(None))
    )


def _abandoned_holds(created_before: datetime) -> Select[Any]:
    """Unsettled holds taken before `created_before` that no worker owns: a queued or running prediction's hold is
    its worker's to settle, however old."""
    pending_predictions = select(Prediction.hold_id).where(Prediction.status.in_(UNFINISHED_PREDICTION_STATUSES))
    return unsettled_holds(CreditEntry.id, CreditEntry.account_id, CreditEntry.amount, CreditEntry.created_at).where(
        CreditEntry.created_at < created_before, CreditEntry.id.not_in(pending_predictions)
    )


def release_stale_holds(session: Database, created_before: datetime) -> int:
    """Release holds that nobody settled: their gateway died between hold and capture/release. Only holds older
    than any request can live (`Settings.hold_release_after_s`) are touched, so no live request loses its hold."""
    stale = session.execute(_abandoned_holds(created_before)).all()
    for hold_id, account_id, amount, _created_at in stale:
        release_hold(session, Hold(id=hold_id, account_id=account_id, amount=amount))
    return len(stale)


@dataclass(frozen=True)
class LedgerAudit:
    """What `replate credits audit` checks: the kept balances equal the journal's sums, and no hold outlived its
    expiry (`Settings.hold_expiry_s`)."""

    accounts: int
    entries: int
    open_holds: int
    mismatches: dict[int, tuple[Balance, Balance]]
    """{account: (kept, journal)} where they differ."""
    expired_holds: list[tuple[int, int, int, datetime]]
    """(hold id, account, amount, taken at) of each unsettled hold past its expiry."""

    @property
    def is_clean(self) -> bool:
        return not self.mismatches and not self.expired_holds


def audit_ledger(session: Database, expired_before: datetime) -> LedgerAudit:
    """Check the whole ledger in one transaction: see LedgerAudit. Holds taken before `expired_before` (now minus
    the hold expiry) and still open are expired."""
    accounts = session.execute(select(func.count(Account.id))).scalar_one()
    entries = session.execute(select(func.count(CreditEntry.id))).scalar_one()
    open_holds = session.execute(unsettled_holds(func.count(CreditEntry.id))).scalar_one()
    expired = [tuple(row) for row in session.execute(_abandoned_holds(expired_before))]
    return LedgerAudit(
        accounts=accounts,
        entries=entries,
        open_holds=open_holds,
        mismatches=ledger_mismatches(session),
        expired_holds=expired,  # type: ignore[arg-type]
    )
