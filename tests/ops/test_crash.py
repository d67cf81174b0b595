"""The crash test, short: SIGKILL the server twice under usage load; nothing lost or doubled.

Runs `scripts/crash_test.py` against a real `python -m app serve` on the suite's database
kind: PostgreSQL when TEST_DATABASE_URL is set (a database of its own, dropped after),
SQLite otherwise. `./scripts/crash-test` is the longer run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.support import ROOT


def _database_args() -> list[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return ["--sqlite"]
    parts = urlsplit(url)
    return ["--pg-url", urlunsplit((parts.scheme, parts.netloc, "", "", ""))]


async def test_acknowledged_usage_survives_two_sigkills_exactly_once(tmp_path: Path) -> None:
    report = tmp_path / "crash.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "crash_test.py"),
        "--duration", "6", "--kills", "2", "--workers", "6", "--teams", "4",
        "--report", str(report), "--log", str(tmp_path / "server.log"), *_database_args(),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=600)
    text = output.decode()
    assert process.returncode == 0, text
    figures = json.loads(report.read_text())
    assert figures["problems"] == [], text
    assert len(figures["kills_at_seconds"]) == 2
    assert figures["acknowledged"] > 0
    assert figures["in_ledger"] == figures["acknowledged"]
    assert figures["duplicates"] == 0
    assert figures["missing"] == 0
    assert figures["recorded_unacknowledged"] == 0
    assert figures["audit"] == "audit clean: no discrepancy"
