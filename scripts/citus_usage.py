"""Drives usage through the batcher against DATABASE_URL and prints what it measured
(docs/scaling.md, "Measured"). Meant for the local Citus cluster (scripts/citus-cluster),
works on any migrated database. It creates its own teams, each with $10,000 prepaid.

    DATABASE_URL=postgres://postgres@127.0.0.1:9700/creditline \\
        .venv/bin/python scripts/citus_usage.py --teams 64 --events 4000

Events go in waves of --wave at once; a first round (two per team) lets every pooled
connection learn the row types, and is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import db
from app.config import Settings
from app.credits import batching, shards
from app.credits import service as credits
from app.credits.models import CreditAccount, CreditKind
from app.kit import clock
from app.teams.models import Team


async def run(args: argparse.Namespace) -> None:
    settings = Settings(database_url=os.environ["DATABASE_URL"], auth_jwt_secret="x" * 32)
    await db.init_db(settings)
    try:
        now = clock.now()
        teams = [
            Team(id=uuid.uuid4(), name=f"citus {i}", created_at=now) for i in range(args.teams)
        ]
        await Team.bulk_create(teams)
        await CreditAccount.bulk_create(
            [CreditAccount(team_id=t.id, updated_at=now) for t in teams]
        )
        ids = [t.id for t in teams]
        for team in ids:
            await credits.grant_credits(team, CreditKind.PREPAID, 10**12)
        placement = await shards.shards_of(ids)
        print(f"distributed={shards.distributed()} shards={len(set(placement.values()))}")
        sizes: list[int] = []
        apply_usage = credits._apply_usage

        async def counted(requests: list[credits.UsageRequest]) -> list[credits.UsageResult]:
            sizes.append(len(requests))
            return await apply_usage(requests)

        credits._apply_usage = counted  # type: ignore[assignment]
        batcher = batching.UsageBatcher(max_active_sharded=args.active)
        warm = [
            credits.UsageRequest(team_id=t, amount=1, idempotency_key=f"warm-{uuid.uuid4().hex}")
            for t in ids
            for _ in range(2)
        ]
        await asyncio.gather(*(batcher.submit(r) for r in warm))
        sizes.clear()
        tag = uuid.uuid4().hex[:8]
        requests = [
            credits.UsageRequest(
                team_id=ids[i % len(ids)], amount=1000, idempotency_key=f"{tag}-{i}"
            )
            for i in range(args.events)
        ]
        accepted = 0
        started = time.perf_counter()
        for first in range(0, len(requests), args.wave):
            wave = requests[first : first + args.wave]
            results = await asyncio.gather(*(batcher.submit(r) for r in wave))
            accepted += sum(1 for r in results if r.record is not None)
        elapsed = time.perf_counter() - started
        mean = sum(sizes) / max(1, len(sizes))
        print(
            f"events={args.events} accepted={accepted} seconds={elapsed:.2f} "
            f"events_per_s={args.events / elapsed:.0f} transactions={len(sizes)} "
            f"events_per_transaction={mean:.1f}"
        )
    finally:
        await db.close_db()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teams", type=int, default=64)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--wave", type=int, default=400)
    parser.add_argument("--active", type=int, default=8, help="batches at once on Citus")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
