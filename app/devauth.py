"""Development sign-in for the console: `POST /dev/token` mints a token for any email.

Only routed when the environment is development or test (see `routes`); in production the
console takes its token from the host platform (`?token=` or a postMessage hand-off).
"""

from __future__ import annotations

import json
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.config import Environment, Settings
from app.teams import tokens

TOKEN_TTL = timedelta(hours=12)
MAX_EMAIL = 320
MAX_NAME = 255


def _error(field: str | None, message: str) -> JSONResponse:
    return JSONResponse({"error": {"field": field, "message": message}}, status_code=400)


def _endpoint(settings: Settings) -> Route:
    async def dev_token(request: Request) -> JSONResponse:
        """`{"email": ..., "name": ...}` -> `{"token": ...}` (never an operator token)."""
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(None, "Send a JSON object.")
        if not isinstance(body, dict):
            return _error(None, "Send a JSON object.")
        email, name = body.get("email"), body.get("name")
        if not isinstance(email, str) or not email.strip():
            return _error("email", "Enter your email address.")
        email = email.strip().lower()
        local, at, domain = email.partition("@")
        if not at or not local or "." not in domain or len(email) > MAX_EMAIL or " " in email:
            return _error("email", "Enter a valid email address.")
        if name is not None and not isinstance(name, str):
            return _error("name", "The name must be text.")
        name = (name or "").strip()[:MAX_NAME] or None
        token = tokens.mint(
            settings.jwt_secret(),
            # The same subject as `creditline token --email`, so both reach one user.
            subject=f"email:{email}",
            email=email,
            name=name,
            ttl=TOKEN_TTL,
        )
        return JSONResponse({"token": token, "expiresIn": int(TOKEN_TTL.total_seconds())})

    return Route("/dev/token", dev_token, methods=["POST"])


def routes(settings: Settings) -> list[BaseRoute]:
    """The sign-in route in development and test; nothing in production."""
    if settings.environment in (Environment.DEVELOPMENT, Environment.TEST):
        return [_endpoint(settings)]
    return []
