"""Idempotency-Key: a retried request with the same key and body is answered with the first response and charged
at most once; the same key with another body is refused; a concurrent duplicate waits for the first.

The key is claimed (a row unique on account and key) before any work. A successful response is stored on the row
and replayed with `idempotent-replayed: true`; a failed one deletes the row, so that a retry runs again (a failure
charged nothing). A row left unfinished by a gateway that died is taken over once it is older than any request.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway._tasks import run_or_undo, run_to_end
from gateway.db import IdempotencyKey, as_utc, utcnow
from gateway.deps import Services
from gateway.errors import IdempotencyKeyReused
from replate.errors import InvalidRequest

KEY_TTL_S = 24 * 3600
"""A key is remembered this long; a retry later than that runs as a new request."""
REPLAYED_HEADERS = ("content-type", "x-credits-charged", "x-width", "x-height", "x-engines", "location")
POLL_INTERVAL_S = 0.1
MAX_KEY_LENGTH = 255


async def run_idempotent(
    request: Request, services: Services, account_id: int, produce: Callable[[], Awaitable[Response]]
) -> Response:
    key = request.headers.get("idempotency-key")
    if key is None:
        return await produce()
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    fingerprint = hashlib.sha256(request.method.encode() + request.url.path.encode() + await request.body()).hexdigest()
    abandoned_after = timedelta(seconds=services.settings.triton_timeout_s + 60)

    async def unclaim(claimed: bool) -> None:
        if claimed:
            await _forget(services, account_id, key)

    while True:
        # a claim committed under a cancelled request is forgotten at once: a retry must not wait for it to expire
        if await run_or_undo(_claim(services, account_id, key, fingerprint), unclaim):
            break
        replay = await _completed_response(services, account_id, key, fingerprint, abandoned_after)
        if replay is not None:
            return replay
    try:
        response = await produce()
    except BaseException:
        await run_to_end(_forget(services, account_id, key))
        raise
    if 200 <= response.status_code < 300:
        await _complete(services, account_id, key, response)
    else:
        await _forget(services, account_id, key)
    return response


async def _claim(services: Services, account_id: int, key: str, fingerprint: str) -> bool:
    try:
        async with services.sessions.begin() as session:
            session.add(IdempotencyKey(account_id=account_id, key=key, fingerprint=fingerprint))
    except IntegrityError:
        return False
    return True


async def _completed_response(
    services: Services, account_id: int, key: str, fingerprint: str, abandoned_after: timedelta
) -> Response | None:
    """Wait for the row's first request to finish; None when the row is gone (it failed) and may be claimed."""
    while True:
        async with services.sessions() as session:
            row = (
                await session.execute(
                    select(IdempotencyKey).where(IdempotencyKey.account_id == account_id, IdempotencyKey.key == key)
                )
            ).scalar_one_or_none()
        if row is None:
            return None
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request; use a new key for a new request"
            )
        if row.is_complete:
            headers = {**(row.response_headers or {}), "idempotent-replayed": "true"}
            return Response(row.response_body, status_code=row.response_status or 200, headers=headers)
        if as_utc(row.created_at) < utcnow() - abandoned_after:
            await _forget(services, account_id, key)
            return None
        await asyncio.sleep(POLL_INTERVAL_S)


async def _complete(services: Services, account_id: int, key: str, response: Response) -> None:
    headers = {name: value for name, value in response.headers.items() if name in REPLAYED_HEADERS}
    async with services.sessions.begin() as session:
        row = (
            await session.execute(
                select(IdempotencyKey).where(IdempotencyKey.account_id == account_id, IdempotencyKey.key == key)
            )
        ).scalar_one()
        row.is_complete = True
        row.response_status = response.status_code
        row.response_headers = headers
        row.response_body = bytes(response.body)


async def _forget(services: Services, account_id: int, key: str) -> None:
    async with services.sessions.begin() as session:
        await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.account_id == account_id, IdempotencyKey.key == key)
        )


async def delete_expired_keys(session: AsyncSession) -> int:
    cutoff = utcnow() - timedelta(seconds=KEY_TTL_S)
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return result.rowcount or 0
