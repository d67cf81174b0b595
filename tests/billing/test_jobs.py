"""Scheduled jobs across replicas: one pass at a time under PostgreSQL's advisory locks;
SCHEDULER=off starts none. The lock tests run against PostgreSQL on either suite run
(TEST_DATABASE_URL's server, or the local one), and fail without it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app import cli, locks
from app.billing import collection, scheduler, sweeper
from app.config import Settings
from tests.support import ROOT
from tests.support.db import postgres_server

WAIT = 20.0  # upper bound on any wait; never a timing assertion


def _postgres() -> Settings:
    # The locks need only a PostgreSQL session, not the suite's tables.
    return Settings(database_url=f"{postgres_server()}/postgres")


class HeldJob:
    """A fake pass body that keeps its lock until released, counting its runs."""

    def __init__(self, result: Any = None) -> None:
        self.runs = 0
        self.result = result
        self.running = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> Any:
        self.runs += 1
        self.running.set()
        await self.release.wait()
        return self.result


async def _second_while_first_runs(
    job: HeldJob, run: Callable[[], Coroutine[Any, Any, Any]]
) -> tuple[Any, Any]:
    """Starts a pass, and while its job runs (lock held), a second one; returns both."""
    first = asyncio.create_task(run())
    try:
        async with asyncio.timeout(WAIT):
            await job.running.wait()
            # Were the lock not exclusive, this pass would run the job and wait forever.
            second = await run()
    finally:
        job.release.set()
    return await first, second


async def test_two_scheduler_passes_at_once_run_the_job_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = HeldJob()
    monkeypatch.setattr(scheduler, "run_once", job)
    settings = _postgres()
    ran = await _second_while_first_runs(job, lambda: scheduler.run_pass(settings))
    assert ran == (True, False)
    assert job.runs == 1
    # The lock went with the pass: the next one runs.
    assert await scheduler.run_pass(settings) is True
    assert job.runs == 2


async def test_two_sweeper_passes_at_once_sweep_once(monkeypatch: pytest.MonkeyPatch) -> None:
    job = HeldJob(result=3)
    monkeypatch.setattr(sweeper, "sweep_once", job)
    settings = _postgres()
    swept = await _second_while_first_runs(job, lambda: sweeper.sweep_pass(settings))
    assert swept == (3, None)
    assert job.runs == 1


async def test_the_scheduler_and_the_sweeper_do_not_wait_for_each_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = HeldJob()
    monkeypatch.setattr(scheduler, "run_once", job)
    monkeypatch.setattr(sweeper, "sweep_once", AsyncCounter(0))
    settings = _postgres()
    first = asyncio.create_task(scheduler.run_pass(settings))
    try:
        async with asyncio.timeout(WAIT):
            await job.running.wait()
            swept = await sweeper.sweep_pass(settings)  # its own lock: free
    finally:
        job.release.set()
    assert await first is True
    assert swept == 0


async def test_a_lock_held_by_another_replica_skips_the_pass_until_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = AsyncCounter()
    monkeypatch.setattr(scheduler, "run_once", job)
    settings = _postgres()
    other = await asyncpg.connect(settings.database_url)
    try:
        await other.execute("SELECT pg_advisory_lock($1)", locks.lock_key(locks.INVOICE_SCHEDULER))
        assert await scheduler.run_pass(settings) is False
    finally:
        await other.close()  # the replica goes away: PostgreSQL releases its lock
    assert await scheduler.run_pass(settings) is True
    assert job.runs == 1


async def test_on_sqlite_every_pass_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """SQLite serves one process: there is no one to share the jobs with."""
    job = HeldJob()
    monkeypatch.setattr(scheduler, "run_once", job)
    settings = Settings(database_url=f"sqlite://{tmp_path / 'one.sqlite3'}")
    first = asyncio.create_task(scheduler.run_pass(settings))
    async with asyncio.timeout(WAIT):
        await job.running.wait()
    job.running.clear()
    second = asyncio.create_task(scheduler.run_pass(settings))
    async with asyncio.timeout(WAIT):
        await job.running.wait()  # the second runs while the first still does
    job.release.set()
    assert await asyncio.gather(first, second) == [True, True]
    assert job.runs == 2


class AsyncCounter:
    """A fake pass body that returns at once, counting its runs."""

    def __init__(self, result: Any = None) -> None:
        self.runs = 0
        self.result = result

    async def __call__(self) -> Any:
        self.runs += 1
        return self.result


# Runs the app's lifespan (as `serve` does) and prints the background tasks it started.
_LIFESPAN_TASKS = """
import asyncio, json
from app.main import app

async def main() -> None:
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0)
        print(json.dumps(sorted(task.get_name() for task in asyncio.all_tasks())))

asyncio.run(main())
"""


def _lifespan_tasks(scheduler_setting: str, tmp_path: Path) -> list[str]:
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": f"sqlite://{tmp_path / 'lifespan.sqlite3'}",
        "AUTH_JWT_SECRET": "x" * 40,
        "SCHEDULER": scheduler_setting,
    }
    done = subprocess.run(
        [sys.executable, "-c", _LIFESPAN_TASKS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # The script prints the task names as one JSON list; log lines (JSON objects) go
    # to the same stdout.
    lists = [line for line in done.stdout.splitlines() if line.startswith("[")]
    names: list[str] = json.loads(lists[-1])
    return names


def test_scheduler_off_starts_neither_job(tmp_path: Path) -> None:
    started = _lifespan_tasks("on", tmp_path)
    assert "invoice-scheduler" in started
    assert "credits-sweeper" in started
    stopped = _lifespan_tasks("off", tmp_path)
    assert "invoice-scheduler" not in stopped
    assert "credits-sweeper" not in stopped


@pytest.mark.parametrize(
    ("lock", "target", "command"),
    [
        (locks.INVOICE_SCHEDULER, "app.billing.collection.close_month", "close-month"),
        (locks.CREDITS_SWEEPER, "app.billing.sweeper.sweep_once", "expire-credits"),
    ],
)
async def test_the_cli_commands_wait_for_the_schedulers_lock(
    monkeypatch: pytest.MonkeyPatch, lock: str, target: str, command: str
) -> None:
    """`close-month` and `expire-credits` take the lock of the pass they duplicate: while
    a replica's pass holds it, the command waits, and runs once it is released."""
    released = False
    ran_while_held: list[bool] = []

    async def job(*_args: object) -> Any:
        ran_while_held.append(not released)
        if command == "close-month":
            return collection.CloseReport("2020-01")
        return 0

    monkeypatch.setattr(target, job)
    settings = _postgres()
    other = await asyncpg.connect(settings.database_url)
    try:
        await other.execute("SELECT pg_advisory_lock($1)", locks.lock_key(lock))
        running = asyncio.create_task(
            cli.close_month_command(settings, "2020-01")
            if command == "close-month"
            else cli.expire_credits_command(settings)
        )
        # The command is blocked on the lock: PostgreSQL shows its session waiting.
        key = locks.lock_key(lock) & 0xFFFFFFFFFFFFFFFF
        async with asyncio.timeout(WAIT):
            while not await other.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid::bigint = $1 AND objid::bigint = $2",
                key >> 32,
                key & 0xFFFFFFFF,
            ):
                assert not running.done()
                await asyncio.sleep(0.05)
        released = True
    finally:
        await other.close()
    async with asyncio.timeout(WAIT):
        assert await running == 0
    assert ran_while_held == [False]
