"""Operator actions behind `replate keys ...`, `replate credits grant|audit` and `replate db upgrade` (each one
transaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import api_key_secret, create_account_key, key_exists, rehash_legacy_keys, revoke_key
from gateway.credits import LedgerAudit, audit_ledger, grant_credits
from gateway.db import Account, ApiKey, create_engine, create_sessionmaker, utcnow
from gateway.errors import NotFound
from gateway.settings import Settings


@asynccontextmanager
async def _transaction(settings: Settings) -> AsyncIterator[AsyncSession]:
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            yield session
    finally:
        await engine.dispose()


async def create_key(settings: Settings, account_name: str, credits: int) -> str:
    async with _transaction(settings) as session:
        new = await create_account_key(session, account_name, api_key_secret(settings))
        if credits > 0:
            await session.run_sync(grant_credits, new.account_id, credits)
    return new.key


async def bootstrap_key(settings: Settings, account_name: str, key: str, credits: int) -> bool:
    """Register the operator's chosen `key` for account_name with `credits`, once: False (and nothing changes) when
    that key was registered before, so a deployment can run this on every upgrade."""
    secret = api_key_secret(settings)
    async with _transaction(settings) as session:
        if await key_exists(session, key, secret):
            return False
        new = await create_account_key(session, account_name, secret, key)
        if credits > 0:
            await session.run_sync(grant_credits, new.account_id, credits)
    return True


async def list_keys(settings: Settings) -> list[str]:
    async with _transaction(settings) as session:
        rows = await session.execute(
            select(ApiKey.prefix, Account.name, ApiKey.created_at, ApiKey.revoked_at)
            .join(Account, Account.id == ApiKey.account_id)
            .order_by(ApiKey.id)
        )
        return [
            f"{prefix}…  account={name}  created={created:%Y-%m-%d %H:%M}  {'revoked' if revoked else 'active'}"
            for prefix, name, created, revoked in rows
        ]


async def revoke(settings: Settings, prefix: str) -> int:
    async with _transaction(settings) as session:
        return await revoke_key(session, prefix)


async def grant(settings: Settings, account_name: str, credits: int) -> int:
    async with _transaction(settings) as session:
        account_id = (await session.execute(select(Account.id).where(Account.name == account_name))).scalar()
        if account_id is None:
            raise NotFound(f"no account named {account_name!r}; create one with `replate keys create`")
        return (await session.run_sync(grant_credits, account_id, credits)).available


async def ensure_demo_key(settings: Settings, name: str, credits: int) -> str | None:
    """On the very first start, a demo account and key (returned once); None when any account exists."""
    async with _transaction(settings) as session:
        if (await session.execute(select(func.count(Account.id)))).scalar():
            return None
        new = await create_account_key(session, name, api_key_secret(settings))
        await session.run_sync(grant_credits, new.account_id, credits)
    return new.key


async def rehash_keys(settings: Settings) -> int:
    """Wrap the SHA-256 digests of keys stored before migration 0004 under the API key secret."""
    async with _transaction(settings) as session:
        return await rehash_legacy_keys(session, api_key_secret(settings))


async def audit(settings: Settings) -> LedgerAudit:
    """The ledger checked on one snapshot (REPEATABLE READ on PostgreSQL, the write lock on SQLite), so that a
    request settling meanwhile cannot look like a mismatch."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                return await connection.run_sync(audit_ledger, utcnow() - timedelta(seconds=settings.hold_expiry_s))
    finally:
        await engine.dispose()


def audit_report(result: LedgerAudit, hold_expiry_s: float) -> str:
    """The audit as `replate credits audit` prints it: one line per problem, then the verdict."""
    lines = [f"ledger: {result.accounts} accounts, {result.entries} journal entries, {result.open_holds} open holds"]
    for account_id, (kept, journal) in sorted(result.mismatches.items()):
        lines.append(
            f"MISMATCH account {account_id}: kept balance={kept.balance} held={kept.held}, "
            f"journal balance={journal.balance} held={journal.held}"
        )
    for hold_id, account_id, amount, taken_at in result.expired_holds:
        lines.append(
            f"EXPIRED hold {hold_id} of account {account_id}: {amount} credits held since {taken_at:%Y-%m-%d %H:%M:%S}"
            f" (expiry {hold_expiry_s:g} s)"
        )
    if result.is_clean:
        lines.append(f"audit passed: balances equal the journal, no hold older than its expiry ({hold_expiry_s:g} s)")
    else:
        lines.append(
            f"audit FAILED: {len(result.mismatches)} mismatched account(s), {len(result.expired_holds)} expired hold(s)"
        )
    return "\n".join(lines)
