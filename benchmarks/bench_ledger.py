"""Ledger benchmark: the cost of one billed request's ledger work (hold, then capture) against the length of the
account's journal. A catalogue account writes thousands of journal entries a day, so this must not grow with them.

Prints the p50 of `credits.charge` (hold + capture, two transactions) on an account whose journal already holds N
settled holds. Run from the repository root: `python -m benchmarks.bench_ledger [--database-url URL]` (SQLite in a
temporary folder by default; a PostgreSQL URL may carry `?search_path=SCHEMA`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert

from gateway.auth import create_account_key
from gateway.credits import charge, grant_credits
from gateway.db import CreditEntry, Transactions, create_engine, create_sessionmaker
from gateway.migrate import upgrade_database

HISTORIES = (0, 10_000, 100_000)
CHARGES = 200


async def charge_p50_ms(database_url: str, history: int) -> float:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    async with sessions.begin() as session:
        account_id = (await create_account_key(session, f"bench-{uuid.uuid4().hex[:8]}", b"bench-secret")).account_id
        await session.run_sync(grant_credits, account_id, 10**9)
        if history:
            # settled holds: journal rows that net to zero, so the kept balance needs no change
            holds = [dict(account_id=account_id, kind="hold", amount=1, operation="old")] * (history // 2)
            hold_ids = (await session.execute(insert(CreditEntry).returning(CreditEntry.id), holds)).scalars().all()
            releases = [dict(account_id=account_id, kind="release", amount=1, hold_id=i) for i in hold_ids]
            await session.execute(insert(CreditEntry), releases)
    transactions = Transactions(engine)
    latencies = []
    for _ in range(CHARGES):
        started = time.perf_counter()
        async with charge(transactions, account_id, 1, operation="bench"):
            pass
        latencies.append((time.perf_counter() - started) * 1000)
    await transactions.dispose()
    await engine.dispose()
    return statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="", help="empty: a new SQLite file per history length")
    args = parser.parse_args()
    print(f"hold + capture, p50 of {CHARGES} charges, by journal length of the account")
    for history in HISTORIES:
        with tempfile.TemporaryDirectory() as folder:
            url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'ledger.db'}"
            upgrade_database(url)
            p50 = asyncio.run(charge_p50_ms(url, history))
        print(f"  {history:>7} entries: {p50:6.2f} ms")


if __name__ == "__main__":
    main()
