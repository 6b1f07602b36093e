"""API keys: random, shown once, stored as SHA-256 (keys carry 256 bits of entropy, so a slow hash adds nothing)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.db import Account, ApiKey, utcnow
from gateway.errors import Unauthorized
from replate.errors import InvalidRequest

KEY_PREFIX = "rp_"


@dataclass(frozen=True)
class NewKey:
    key: str
    account_id: int
    key_id: int


_ACTIVE_KEY = select(ApiKey.account_id, ApiKey.key_hash).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
)  # built once, as credits.py's hot statements


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


CHOSEN_KEY = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{43,}}")
"""A key an operator brings (`replate keys bootstrap`): as long and as random-looking as the ones we make."""


async def create_account_key(session: AsyncSession, name: str, key: str | None = None) -> NewKey:
    """Create an account named `name` (or reuse it) and a key for it: `key` when the operator chose one (it must
    match CHOSEN_KEY), else a new random one; the plain key exists only in the result."""
    if key is not None and not CHOSEN_KEY.fullmatch(key):
        raise InvalidRequest(f"a chosen API key must be {KEY_PREFIX} followed by at least 43 of A-Z a-z 0-9 _ -")
    account = (await session.execute(select(Account).where(Account.name == name))).scalar_one_or_none()
    if account is None:
        account = Account(name=name)
        session.add(account)
        await session.flush()
    key = key or KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(account_id=account.id, prefix=key[:10], key_hash=hash_key(key))
    session.add(api_key)
    await session.flush()
    return NewKey(key=key, account_id=account.id, key_id=api_key.id)


async def key_exists(session: AsyncSession, key: str) -> bool:
    """Whether `key` was ever registered (revoked keys included)."""
    return (await session.execute(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key)))).first() is not None


async def authenticate(session: AsyncConnection | AsyncSession, key: str | None) -> int:
    """The account id of a valid, unrevoked key; Unauthorized otherwise."""
    if not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
    digest = hash_key(key)
    row = (await session.execute(_ACTIVE_KEY, {"key_hash": digest})).one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise Unauthorized("unknown or revoked API key")
    return row.account_id


async def revoke_key(session: AsyncSession, prefix: str) -> int:
    """Revoke every active key starting with `prefix`; returns how many were revoked."""
    keys = (
        await session.execute(select(ApiKey).where(ApiKey.prefix == prefix[:10], ApiKey.revoked_at.is_(None)))
    ).scalars()
    count = 0
    for api_key in keys:
        api_key.revoked_at = utcnow()
        count += 1
    await session.flush()
    return count
