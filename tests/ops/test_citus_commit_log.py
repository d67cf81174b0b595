"""`scripts/citus_commit_log.py` tells one-phase from two-phase usage transactions in a
worker log (docs/scaling.md, "The suite on Citus")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

SCRIPT = ROOT / "scripts" / "citus_commit_log.py"
PREFIX = "2026-12-05 07:38:39.094 UTC"


def _line(pid: int, statement: str, kind: str = "statement") -> str:
    return f"{PREFIX} [{pid}] LOG:  {kind}: {statement}\n"


def _usage(pid: int, ending: str) -> list[str]:
    return [
        _line(pid, "BEGIN TRANSACTION ISOLATION LEVEL READ COMMITTED;SELECT 1;"),
        _line(pid, "SELECT id FROM public.credit_accounts_102040 FOR UPDATE", "execute <unnamed>"),
        _line(pid, "INSERT INTO public.usage_records_102136 (id) VALUES (1)", "execute <unnamed>"),
        _line(pid, "UPDATE public.credit_accounts_102040 a SET free = 0", "execute <unnamed>"),
        _line(pid, ending),
    ]


def _run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, check=False
    )


def test_counts_usage_commits_by_kind_and_fails_on_a_two_phase_one(tmp_path: Path) -> None:
    log = tmp_path / "w1.log"
    lines = [_line(7, "SELECT 'before the run'")]
    lines += _usage(11, "COMMIT")
    # Interleaved backends: each transaction is followed by its own pid.
    lines += [
        _line(12, "BEGIN;"),
        _line(13, "BEGIN;"),
        _line(12, "INSERT INTO public.teams_102008 (id) VALUES (1)", "execute <unnamed>"),
        _line(13, "SELECT 1 FROM public.teams_102008"),
        _line(12, "PREPARE TRANSACTION 'citus_0_1_2_0'"),
        _line(13, "COMMIT"),
    ]
    lines += _usage(14, "ROLLBACK")
    log.write_text("".join(lines))
    result = _run(str(log))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage transactions: 1 one-phase, 0 two-phase" in result.stdout
    assert "other transactions, PREPARE TRANSACTION: 1" in result.stdout

    log.write_text("".join(lines + _usage(15, "PREPARE TRANSACTION 'citus_0_1_3_0'")))
    result = _run(str(log))
    assert result.returncode == 1
    assert "usage transactions: 1 one-phase, 1 two-phase" in result.stdout

    # Lines already there before the run are skipped: only the last transaction is read.
    skip = len(lines)
    result = _run(f"{log}:{skip}")
    assert "usage transactions: 0 one-phase, 1 two-phase" in result.stdout


def test_a_bad_argument_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for arguments in ([], [f"{tmp_path / 'w1.log'}:ten"], [str(tmp_path / "missing.log")]):
        result = _run(*arguments)
        assert result.returncode == 2, arguments
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
