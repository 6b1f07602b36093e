"""Operator actions behind `replate keys ...` and `replate credits grant` (each one transaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import create_account_key, key_exists, revoke_key
from gateway.credits import get_balance, grant_credits
from gateway.db import Account, ApiKey, create_engine, create_sessionmaker
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
        new = await create_account_key(session, account_name)
        if credits > 0:
            await grant_credits(session, new.account_id, credits)
    return new.key


async def bootstrap_key(settings: Settings, account_name: str, key: str, credits: int) -> bool:
    """Register the operator's chosen `key` for account_name with `credits`, once: False (and nothing changes) when
    that key was registered before, so a deployment can run this on every upgrade."""
    async with _transaction(settings) as session:
        if await key_exists(session, key):
            return False
        new = await create_account_key(session, account_name, key)
        if credits > 0:
            await grant_credits(session, new.account_id, credits)
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
        await grant_credits(session, account_id, credits)
        return (await get_balance(session, account_id)).available


async def ensure_demo_key(settings: Settings, name: str, credits: int) -> str | None:
    """On the very first start, a demo account and key (returned once); None when any account exists."""
    async with _transaction(settings) as session:
        if (await session.execute(select(func.count(Account.id)))).scalar():
            return None
        new = await create_account_key(session, name)
        await grant_credits(session, new.account_id, credits)
    return new.key
