"""`creditline close-month` and `creditline retry-payments`, run as the operator would."""

from __future__ import annotations

import os
import subprocess
import sys

from app.config import Settings
from app.credits.models import ClosedPeriod
from app.invoices.models import PeriodClose
from tests.support import ROOT
from tests.support.api import JWT_SECRET
from tests.support.payments import STRIPE_API_KEY


def creditline(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "STRIPE_API_KEY": STRIPE_API_KEY,
        "STRIPE_API_BASE": settings.stripe_api_base,
        "ENVIRONMENT": "test",
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_close_month_and_retry_payments_commands(database: Settings) -> None:
    done = creditline(database, "close-month", "--period", "2020-01")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        "closed 2020-01: 0 invoices issued, 0 already issued, 0 paid, 0 payment failed, "
        "0 Stripe unavailable, 0 errors"
    )
    assert await ClosedPeriod.filter(period="2020-01").exists()
    assert (await PeriodClose.get(period="2020-01")).completed_at is not None

    refused = creditline(database, "close-month", "--period", "2999-01")
    assert refused.returncode == 2
    assert "close-month: 2999-01 has not ended yet." in refused.stderr

    retried = creditline(database, "retry-payments")
    assert retried.returncode == 0, retried.stderr
    assert (
        retried.stdout.strip().splitlines()[-1]
        == "retried 0 invoices: 0 paid, 0 failed, 0 Stripe unavailable"
    )
