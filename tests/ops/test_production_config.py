"""With ENVIRONMENT=production, weak settings stop start-up with one clear message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.config import Environment, Settings, production_problems
from tests.support import ROOT

STRONG = {
    "environment": Environment.PRODUCTION,
    "database_url": "postgres://creditline@db.internal:5432/creditline",
    "auth_jwt_secret": "a" * 48,
    "stripe_api_key": "sk_live_51abcdefghijklmnop",
    "stripe_webhook_secret": "whsec_abcdefghijklmnop",
    "stripe_publishable_key": "pk_live_51abcdefghijklmnop",
    "metrics_token": "m" * 32,
}


def _problems(**changes: object) -> list[str]:
    return production_problems(Settings(**{**STRONG, **changes}))


def test_a_strong_configuration_passes_and_other_environments_are_not_checked() -> None:
    assert _problems() == []
    weak = {"database_url": "sqlite://x.db", "stripe_api_key": "", "auth_jwt_secret": "short"}
    assert _problems(environment=Environment.DEVELOPMENT, **weak) == []
    assert _problems(environment=Environment.TEST, **weak) == []


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"stripe_api_key": ""}, "STRIPE_API_KEY is not set"),
        ({"stripe_api_key": "sk_test_51abc"}, "STRIPE_API_KEY is not a live key"),
        ({"stripe_api_key": "sk_live_x", "stripe_api_base": "http://127.0.0.1:8420"}, "emulator"),
        ({"stripe_webhook_secret": ""}, "STRIPE_WEBHOOK_SECRET"),
        ({"stripe_publishable_key": "pk_test_51abc"}, "STRIPE_PUBLISHABLE_KEY"),
        ({"database_url": "sqlite://data/creditline.sqlite3"}, "DATABASE_URL is SQLite"),
        ({"auth_jwt_secret": ""}, "AUTH_JWT_SECRET is not set"),
        ({"auth_jwt_secret": "x" * 31}, "at least 32 bytes"),
        # Each secret of a rotation list counts, the old one as much as the new.
        ({"auth_jwt_secret": f"{'n' * 48},{'o' * 20}"}, "at least 32 bytes"),
        ({"metrics_token": "short"}, "METRICS_TOKEN"),
        (
            {
                "auth_jwks_url": "http://id.example/jwks.json",
                "auth_issuer": "https://id.example/",
                "auth_audience": "creditline",
            },
            "AUTH_JWKS_URL must be https://",
        ),
        ({"cors_allow_origins": ["*"]}, "CORS_ALLOW_ORIGINS"),
    ],
)
def test_each_weak_setting_is_named(changes: dict[str, object], named: str) -> None:
    problems = _problems(**changes)
    assert len(problems) == 1
    assert named in problems[0]


def test_rotation_with_two_long_secrets_passes() -> None:
    assert _problems(auth_jwt_secret=f"{'n' * 48}, {'o' * 40}") == []


def _start(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "AUTH_"))}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, "ENVIRONMENT": "production", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_refuses_to_start_with_one_message_not_a_traceback() -> None:
    started = _start(
        ["-m", "app", "serve", "--port", "0"],
        DATABASE_URL="sqlite://data/never-created.sqlite3",
        AUTH_JWT_SECRET="too-short",
        STRIPE_API_KEY="sk_test_emulator",
        STRIPE_API_BASE="http://127.0.0.1:9",
    )
    assert started.returncode == 2
    assert "Traceback" not in started.stderr
    assert started.stderr.startswith("configuration error: ENVIRONMENT=production refuses:")
    for named in ("AUTH_JWT_SECRET", "DATABASE_URL", "STRIPE_API_KEY", "STRIPE_API_BASE"):
        assert named in started.stderr
    # The schema export reads no secrets: it runs in a production image's build.
    exported = _start(["-m", "app", "export-schema"])
    assert exported.returncode == 0
    assert "type Query" in exported.stdout


def test_uvicorn_importing_the_app_directly_is_refused_too() -> None:
    started = _start(["-c", "import app.main"], DATABASE_URL="sqlite://data/never.sqlite3")
    assert started.returncode == 1
    assert "Traceback" not in started.stderr
    assert "ENVIRONMENT=production refuses" in started.stderr
