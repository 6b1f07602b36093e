"""Tables and the database engine. Schema changes are Alembic migrations (gateway/migrations)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Concatenate, ParamSpec, TypeVar

import sqlalchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    event,
    make_url,
    text,
)
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.errors import DatabaseUnavailable

ENTRY_KINDS = ("grant", "hold", "capture", "release")
PREDICTION_STATUSES = ("starting", "processing", "succeeded", "failed", "canceled")
UNFINISHED_PREDICTION_STATUSES = ("starting", "processing")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored in UTC), PostgreSQL aware ones: make both aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Account(Base):
    """`balance` and `held` are the journal's sums, kept in step by every ledger transaction (gateway/credits.py), so
    that reading or checking them costs one row, however long the journal."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("held >= 0", name="ck_accounts_held_non_negative"),
        CheckConstraint("balance >= held", name="ck_accounts_available_non_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Granted minus captured."""
    held: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Reserved by requests in flight: holds minus their captures and releases."""


KEY_HASH_SCHEMES = ("sha256", "hmac-sha256")
"""How `api_keys.key_hash` was computed (gateway/auth.py): rows written before migration 0004 hold a plain SHA-256
of the key until the gateway re-hashes them under its secret."""


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"hash_scheme IN {KEY_HASH_SCHEMES}", name="ck_api_keys_hash_scheme"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash_scheme: Mapped[str] = mapped_column(
        String(16), default=KEY_HASH_SCHEMES[1], server_default=KEY_HASH_SCHEMES[0]
    )
    """The server default is the legacy scheme: rows that existed before the column say what they hold."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CreditEntry(Base):
    """Append-only credit journal. A capture or release names its hold; the unique index on `hold_id` makes a
    second settlement of one hold impossible, whatever the concurrency."""

    __tablename__ = "credit_entries"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="ck_credit_entries_amount_non_negative"),
        CheckConstraint(f"kind IN {ENTRY_KINDS}", name="ck_credit_entries_kind"),
        CheckConstraint(
            "(kind IN ('capture', 'release')) = (hold_id IS NOT NULL)", name="ck_credit_entries_settlement_has_hold"
        ),
        Index("ix_credit_entries_hold_id", "hold_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("credit_entries.id"), nullable=True)
    operation: Mapped[str] = mapped_column(String(64), default="")
    request_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IdempotencyKey(Base):
    """A client's Idempotency-Key: claimed before the work, completed with the response to replay."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("account_id", "key", name="uq_idempotency_keys_account_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    is_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Prediction(Base):
    """An asynchronous job. Its credits are held at submission (`hold_id`) and settled exactly once by the worker
    that finishes it; a worker owns a job while its lease (`lease_expires_at`) is fresh."""

    __tablename__ = "predictions"
    __table_args__ = (
        CheckConstraint(f"status IN {PREDICTION_STATUSES}", name="ck_predictions_status"),
        Index("ix_predictions_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="starting")
    params: Mapped[dict[str, object]] = mapped_column(JSON)
    input_image: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    return_base64: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_id: Mapped[int] = mapped_column(ForeignKey("credit_entries.id"))
    credits: Mapped[int] = mapped_column(Integer)
    output: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    info: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    charge_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def create_engine(url: str, *, sqlite_foreign_keys: bool = True) -> AsyncEngine:
    """SQLite (aiosqlite) or PostgreSQL (asyncpg). A PostgreSQL URL may carry `?search_path=SCHEMA` to keep
    replate's tables in their own schema of a shared database. Migrations turn SQLite's foreign keys off: its way to
    change a table is to copy it and drop the old one, which enforced keys forbid (they are checked afterwards)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed, connect_args=SQLITE_CONNECT_ARGS)
        _serialize_sqlite_writers(engine.sync_engine, sqlite_foreign_keys)
    else:
        connect_args = {}
        if "search_path" in parsed.query:
            connect_args["server_settings"] = {"search_path": str(parsed.query["search_path"])}
            parsed = parsed.difference_update_query(["search_path"])
        engine = create_async_engine(
            parsed, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args
        )
    _report_outages(engine.sync_engine)
    return engine


SQLITE_CONNECT_ARGS = {"timeout": 30}
"""How long a SQLite connection waits for another's write lock, in seconds."""


def _report_outages(engine: Engine) -> None:
    """A database that refuses connections, is starting or stopping, or drops a connection raises
    DatabaseUnavailable (503 `unavailable`, gRPC UNAVAILABLE), wherever the statement ran; other database errors
    (constraints, bugs) are left as they are. The pool still reconnects after an outage (pre-ping is left alone)."""

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, _record, cargs, cparams):  # type: ignore[no-untyped-def]
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:  # asyncpg's "connection refused" is a bare OSError, unseen by handle_error
            raise DatabaseUnavailable(DATABASE_DOWN) from exc

    @event.listens_for(engine, "handle_error")
    def _translate(context) -> None:  # type: ignore[no-untyped-def]
        if context.is_pre_ping or not isinstance(context.original_exception, Exception):
            return  # pre-ping reconnects by itself; a cancellation (BaseException) must stay a cancellation
        if context.is_disconnect or context.connection is None:  # lost mid-statement, or refused while connecting
            raise DatabaseUnavailable(DATABASE_DOWN) from context.original_exception


DATABASE_DOWN = "the database is unavailable; try again shortly"


def _serialize_sqlite_writers(engine: Engine, foreign_keys: bool) -> None:
    """SQLite has no SELECT ... FOR UPDATE: every transaction takes the write lock up front (BEGIN IMMEDIATE),
    so that reading the available credits and writing the hold are one atomic step. WAL with synchronous=NORMAL:
    a commit survives a crash of the process; a power loss may undo the last ones, never half of one."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # no fsync per commit; the trade-off: docs/architecture.md
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        if not connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


READ_ONLY = "replate_read_only"
"""An execution option: on SQLite, such connections take no write lock and run each statement on its own (WAL gives
each one a consistent snapshot), so a read neither waits for writers nor pays for a transaction."""


P = ParamSpec("P")
T = TypeVar("T")


class Transactions:
    """Runs a unit of work (a synchronous function of a Connection) in one write transaction of `engine`'s database,
    at the least cost in thread hops. PostgreSQL: on the async engine through `run_sync` (asyncpg needs no thread).
    SQLite: the whole transaction in one hop to a thread of its own, on a pysqlite engine over the same file with
    the same connection rules; through aiosqlite every statement, BEGIN and COMMIT included, is a hop of its own (a
    hold is four). Call `dispose` when done."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sqlite = _SqliteThread.open(engine.url) if engine.url.get_backend_name() == "sqlite" else None

    async def run(self, work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(connection, *args, **kwargs)` inside a transaction, committed when it returns."""
        if self._sqlite is not None:
            return await self._sqlite.run(lambda connection: work(connection, *args, **kwargs))
        async with self.engine.begin() as connection:
            return await connection.run_sync(work, *args, **kwargs)

    async def dispose(self) -> None:
        if self._sqlite is not None:
            await self._sqlite.dispose()


@dataclass(frozen=True)
class _SqliteThread:
    """A pysqlite engine used from one thread: SQLite runs one write transaction at a time anyway, and its
    connection never changes thread."""

    engine: Engine
    executor: ThreadPoolExecutor

    @classmethod
    def open(cls, url: URL) -> _SqliteThread:
        engine = sqlalchemy.create_engine(url.set(drivername="sqlite+pysqlite"), connect_args=SQLITE_CONNECT_ARGS)
        _serialize_sqlite_writers(engine, foreign_keys=True)
        _report_outages(engine)
        return cls(engine, ThreadPoolExecutor(1, thread_name_prefix="replate-sqlite"))

    async def run(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._in_transaction, work)

    def _in_transaction(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as connection:
            return work(connection)

    async def dispose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self.engine.dispose)
        self.executor.shutdown()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def reading(engine: AsyncEngine) -> AsyncEngine:
    """The engine for connections that only read (an API key, a balance); writing through them is a bug."""
    return engine.execution_options(**{READ_ONLY: True})


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
