"""The project's committed artefacts match the code."""

from __future__ import annotations

import subprocess
import sys

from app import db
from app.config import Settings
from app.graphql.schema import schema
from tests.support import ROOT


def test_schema_graphql_matches_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed.strip() == schema.as_str().strip(), (
        "schema.graphql drifted: run `python -m app export-schema > schema.graphql`"
    )


def test_export_schema_command_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "export-schema"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == schema.as_str().strip()


async def test_no_model_change_lacks_a_migration(database: Settings) -> None:
    assert await db.pending_model_changes(database) == []


def test_bad_configuration_stops_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"DATABASE_URL": "mysql://nope", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: DATABASE_URL: Value error, must start with sqlite:// or postgres://"
    ]
