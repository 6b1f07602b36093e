"""API keys: random, shown once, stored as HMAC-SHA256 under a server secret, compared in constant time.

A key carries 256 bits of entropy, so no hash of it can be reversed or brute-forced; the secret (a "pepper",
`Settings.api_key_secret`, kept out of the database) adds that a copy of the database alone cannot even check a
guessed key, operator-chosen keys included. The stored digest is HMAC(secret, SHA-256(key)): keys stored before
migration 0004 held SHA-256(key), which `rehash_legacy_keys` wraps under the secret without knowing the keys.

Every request reads its key's row (no cache), so a revoked key is refused by the next request, in every process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.db import KEY_HASH_SCHEMES, Account, ApiKey, utcnow
from gateway.errors import Unauthorized
from gateway.settings import Settings, local_secret
from replate.errors import InvalidRequest

KEY_PREFIX = "rp_"
LEGACY_HASH_SCHEME, HASH_SCHEME = KEY_HASH_SCHEMES


@dataclass(frozen=True)
class NewKey:
    key: str
    account_id: int
    key_id: int


_ACTIVE_KEY = select(ApiKey.account_id, ApiKey.key_hash).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
)  # built once, as credits.py's hot statements


def api_key_secret(settings: Settings) -> bytes:
    return local_secret(settings.api_key_secret, settings.data_dir / "api-key.secret")


def hash_key(key: str, secret: bytes) -> str:
    return _wrap(hashlib.sha256(key.encode()).digest(), secret)


def _wrap(sha256_digest: bytes, secret: bytes) -> str:
    return hmac.new(secret, sha256_digest, hashlib.sha256).hexdigest()


CHOSEN_KEY = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{43,}}")
"""A key an operator brings (`replate keys bootstrap`): as long and as random-looking as the ones we make."""


async def create_account_key(session: AsyncSession, name: str, secret: bytes, key: str | None = None) -> NewKey:
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
    api_key = ApiKey(account_id=account.id, prefix=key[:10], key_hash=hash_key(key, secret), hash_scheme=HASH_SCHEME)
    session.add(api_key)
    await session.flush()
    return NewKey(key=key, account_id=account.id, key_id=api_key.id)


async def key_exists(session: AsyncSession, key: str, secret: bytes) -> bool:
    """Whether `key` was ever registered (revoked keys included)."""
    query = select(ApiKey.id).where(ApiKey.key_hash == hash_key(key, secret))
    return (await session.execute(query)).first() is not None


async def authenticate(session: AsyncConnection | AsyncSession, key: str | None, secret: bytes) -> int:
    """The account id of a valid, unrevoked key; Unauthorized otherwise."""
    if not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
    digest = hash_key(key, secret)
    row = (await session.execute(_ACTIVE_KEY, {"key_hash": digest})).one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise Unauthorized("unknown or revoked API key")
    return row.account_id


async def rehash_legacy_keys(session: AsyncSession, secret: bytes) -> int:
    """Wrap every SHA-256 digest stored before migration 0004 under the secret; returns how many. Each row changes
    only while it still says `sha256`, so gateways starting together cannot wrap a digest twice."""
    legacy = (
        await session.execute(select(ApiKey.id, ApiKey.key_hash).where(ApiKey.hash_scheme == LEGACY_HASH_SCHEME))
    ).all()
    count = 0
    for key_id, digest in legacy:
        result = await session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.hash_scheme == LEGACY_HASH_SCHEME)
            .values(key_hash=_wrap(bytes.fromhex(digest), secret), hash_scheme=HASH_SCHEME)
        )
        count += result.rowcount
    return count


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
