"""Helpers the tests share: no tests and no fixtures here (fixtures live in conftest.py files).

`tests/README.md` says which module holds what.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root (where `python -m app` and `scripts/` run from)."""
