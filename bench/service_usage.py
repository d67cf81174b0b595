"""In-process micro-benchmark of the usage write path and the balance read.

`python -m bench.service_usage [--database-url URL] [--rounds N]`: without a URL it
creates a throw-away PostgreSQL database on 127.0.0.1:5432 and drops it afterwards.
Calls the service directly (no HTTP, no GraphQL), so the figures are the CPU and
round trips of `credits.record_usage` and `credits.credits_view` alone. Prints figures;
it asserts nothing about time, only that every event was accepted and the ledger audits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from collections.abc import Awaitable, Callable

from bench import harness


async def _setup(url: str, teams: int) -> list[uuid.UUID]:
    from app import db
    from app.config import Settings

    settings = Settings(database_url=url, auth_jwt_secret=harness.JWT_SECRET)
    await db.migrate(settings)
    ids = await harness._create_teams(url, teams, 1_000_000)
    return [uuid.UUID(i) for i in ids]


async def _timed(
    label: str, rounds: int, events: int, call: Callable[[int], Awaitable[None]]
) -> None:
    await call(-1)  # warm-up: statement caches, first-use imports
    started = time.perf_counter()
    for n in range(rounds):
        await call(n)
    elapsed = time.perf_counter() - started
    per_call_ms = elapsed / rounds * 1000
    if events:
        rate = events * rounds / elapsed
        print(f"{label:<44} {rate:>10,.0f} events/s  {per_call_ms:8.2f} ms/call")
    else:
        print(f"{label:<44} {rounds / elapsed:>10,.0f} calls/s   {per_call_ms:8.3f} ms/call")


async def _run(url: str, rounds: int, teams: int) -> None:
    from app import db
    from app.billing.ledger_audit import audit
    from app.billing.live import GC_THRESHOLDS
    from app.config import Settings
    from app.credits import service as credits

    # The server's collector settings (app.billing.live.start), so allocation-heavy code
    # costs here what it costs there.
    gc.set_threshold(*GC_THRESHOLDS)
    team_ids = await _setup(url, teams)
    await db.init_db(Settings(database_url=url, auth_jwt_secret=harness.JWT_SECRET))
    try:
        run = uuid.uuid4().hex[:8]

        async def apply(requests: list[credits.UsageRequest]) -> None:
            results = await credits.record_usage(requests)
            bad = [r for r in results if r.record is None]
            if bad:
                raise SystemExit(f"rejected events: {bad[:3]}")

        async def many_teams(n: int) -> None:
            await apply(
                [
                    credits.UsageRequest(team_id=t, amount=1_000, idempotency_key=f"{run}-m{n}-{i}")
                    for i, t in enumerate(team_ids)
                ]
            )

        hot = team_ids[0]

        async def one_team(n: int) -> None:
            await apply(
                [
                    credits.UsageRequest(
                        team_id=hot, amount=1_000, idempotency_key=f"{run}-h{n}-{i}"
                    )
                    for i in range(50)
                ]
            )

        async def single(n: int) -> None:
            await apply(
                [credits.UsageRequest(team_id=hot, amount=1_000, idempotency_key=f"{run}-s{n}")]
            )

        async def view_cached(_n: int) -> None:
            await credits.credits_view(hot, with_grants=False, with_invoiced=False)

        async def view_full(_n: int) -> None:
            await credits.credits_view(hot, with_grants=True, with_invoiced=True)

        print(f"database: {url.split('@')[-1]}  teams: {len(team_ids)}  rounds: {rounds}")
        await _timed(
            f"record_usage {len(team_ids)} events x {len(team_ids)} teams",
            rounds,
            len(team_ids),
            many_teams,
        )
        await _timed("record_usage 50 events x 1 team", rounds * 10, 50, one_team)
        await _timed("record_usage 1 event (sequential)", rounds * 50, 1, single)
        await _timed("credits_view(grants=False, invoiced=False)", rounds * 200, 0, view_cached)
        await _timed("credits_view(grants=True, invoiced=True)", rounds * 200, 0, view_full)
        problems = await audit()
        print("audit:", "clean" if not problems else problems[:5])
    finally:
        await db.close_db()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="default: a throw-away PostgreSQL database")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--teams", type=int, default=1000)
    args = parser.parse_args()
    database = None
    url = args.database_url
    if url is None:
        database = harness.Database.create()
        url = database.url
    try:
        asyncio.run(_run(url, args.rounds, args.teams))
    finally:
        if database is not None:
            database.drop()


if __name__ == "__main__":
    main()
