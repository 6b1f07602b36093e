import pytest

from gateway.auth import authenticate, create_account_key, hash_key, revoke_key
from gateway.db import ApiKey, create_engine, create_sessionmaker
from gateway.errors import Unauthorized
from gateway.settings import Settings


async def test_keys_are_stored_hashed_authenticate_and_revoke(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    async with sessions.begin() as session:
        new = await create_account_key(session, "shop")
    async with sessions() as session:
        stored = await session.get(ApiKey, new.key_id)
        assert stored is not None and stored.key_hash == hash_key(new.key) and new.key not in stored.key_hash
        assert await authenticate(session, new.key) == new.account_id
        for bad in (None, "", new.key + "x", "rp_unknown"):
            with pytest.raises(Unauthorized):
                await authenticate(session, bad)
    async with sessions.begin() as session:
        assert await revoke_key(session, new.key[:10]) == 1
    async with sessions() as session:
        with pytest.raises(Unauthorized, match="revoked"):
            await authenticate(session, new.key)
    await engine.dispose()
