import hashlib
import hmac
import stat

import pytest
from sqlalchemy import update

from gateway.admin import create_key
from gateway.auth import api_key_secret, authenticate, create_account_key, hash_key, rehash_legacy_keys, revoke_key
from gateway.db import ApiKey, create_engine, create_sessionmaker
from gateway.errors import Unauthorized
from gateway.settings import Settings

SECRET = b"a-server-secret"


async def test_keys_are_stored_as_an_hmac_under_the_secret_authenticate_and_revoke(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    async with sessions.begin() as session:
        new = await create_account_key(session, "shop", SECRET)
    async with sessions() as session:
        stored = await session.get(ApiKey, new.key_id)
        expected = hmac.new(SECRET, hashlib.sha256(new.key.encode()).digest(), hashlib.sha256).hexdigest()
        assert stored is not None and stored.key_hash == expected and stored.hash_scheme == "hmac-sha256"
        assert stored.key_hash != hashlib.sha256(new.key.encode()).hexdigest()  # a bare digest is not enough
        assert await authenticate(session, new.key, SECRET) == new.account_id
        for bad in (None, "", new.key + "x", "rp_unknown"):
            with pytest.raises(Unauthorized):
                await authenticate(session, bad, SECRET)
        with pytest.raises(Unauthorized):  # the database without the secret cannot check a key
            await authenticate(session, new.key, b"another-secret")
    async with sessions.begin() as session:
        assert await revoke_key(session, new.key[:10]) == 1
    async with sessions() as session:
        with pytest.raises(Unauthorized, match="revoked"):
            await authenticate(session, new.key, SECRET)
    await engine.dispose()


async def test_keys_stored_before_hmac_hashing_are_rehashed_once_and_keep_working(db_settings: Settings) -> None:
    engine = create_engine(db_settings.database_url)
    sessions = create_sessionmaker(engine)
    async with sessions.begin() as session:
        new = await create_account_key(session, "legacy", SECRET)
        legacy_digest = hashlib.sha256(new.key.encode()).hexdigest()  # what migration 0004 finds in the table
        await session.execute(
            update(ApiKey).where(ApiKey.id == new.key_id).values(key_hash=legacy_digest, hash_scheme="sha256")
        )
    async with sessions() as session:
        with pytest.raises(Unauthorized):
            await authenticate(session, new.key, SECRET)
    async with sessions.begin() as session:
        assert await rehash_legacy_keys(session, SECRET) == 1
    async with sessions.begin() as session:
        assert await rehash_legacy_keys(session, SECRET) == 0  # never wrapped twice
    async with sessions() as session:
        assert await authenticate(session, new.key, SECRET) == new.account_id
        assert (await session.get(ApiKey, new.key_id)).key_hash == hash_key(new.key, SECRET)
    await engine.dispose()


async def test_the_secret_is_the_setting_or_a_private_file_in_the_data_folder(settings: Settings) -> None:
    generated = api_key_secret(settings)
    path = settings.data_dir / "api-key.secret"
    assert len(generated) == 64 and api_key_secret(settings) == generated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    configured = settings.model_copy(update={"api_key_secret": "from-the-environment"})
    assert api_key_secret(configured) == b"from-the-environment"
    key = await create_key(configured, "elsewhere", 0)  # a CLI with another secret writes keys nobody else reads
    engine = create_engine(settings.database_url)
    async with engine.connect() as connection:
        with pytest.raises(Unauthorized):
            await authenticate(connection, key, generated)
        assert await authenticate(connection, key, b"from-the-environment") > 0
    await engine.dispose()
