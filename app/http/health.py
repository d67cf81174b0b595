"""Health endpoints for load balancers and orchestrators (docs/deploy.md, "Health").

- `/livez`: the process answers; nothing else is checked, so a database outage never
  gets every replica restarted at once.
- `/readyz`: the database answers, the broker answers and no migration is pending;
  503 naming what is not, so a replica takes traffic only when it can serve it.
- `/healthz`: the database answers (kept for existing monitors).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tortoise import connections

from app import db
from app.events import bus

# A check that has not answered by then counts as failed: a probe must answer promptly.
CHECK_TIMEOUT = 3.0


async def _database() -> str:
    await connections.get("default").execute_query("SELECT 1")
    return "ok"


async def _broker() -> str:
    await bus.broker.ping()
    return "ok"


async def _migrations() -> str:
    pending = await db.pending_migrations()
    if pending:
        raise LookupError(f"pending: {', '.join(pending)}")
    return "ok"


async def _check(probe: Callable[[], Awaitable[str]]) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return True, await probe()
    except LookupError as exc:
        return False, str(exc)
    except TimeoutError:
        return False, f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return False, f"unavailable ({type(exc).__name__})"


async def livez(_request: Request) -> JSONResponse:
    """200 while the process serves requests."""
    return JSONResponse({"status": "ok"})


async def readyz(_request: Request) -> JSONResponse:
    """200 when every check passes; 503 with each check's outcome otherwise."""
    names = ("database", "broker", "migrations")
    outcomes = await asyncio.gather(_check(_database), _check(_broker), _check(_migrations))
    checks = {name: detail for name, (_ok, detail) in zip(names, outcomes, strict=True)}
    failing = [name for name, (ok, _detail) in zip(names, outcomes, strict=True) if not ok]
    if failing:
        return JSONResponse({"status": "unavailable", "failing": failing, "checks": checks}, 503)
    return JSONResponse({"status": "ok", "checks": checks})


async def healthz(_request: Request) -> JSONResponse:
    """200 once the database answers, 503 otherwise."""
    ok, detail = await _check(_database)
    if not ok:
        return JSONResponse({"status": "unavailable", "error": detail}, 503)
    return JSONResponse({"status": "ok"})


ROUTES = [
    Route("/livez", livez, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]
