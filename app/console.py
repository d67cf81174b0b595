"""The billing console: its built assets at `/` (SPA fallback), its configuration, the IDE page.

The assets are built from `frontend/` by the scripts into `app/static/console/` (git-ignored).
Paths owned by the API (/graphql, /healthz, /livez, /readyz, /webhooks, /metrics, /dev,
/invoices, /teams) never fall back to the console's index.html.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.config import Environment, Settings

BUILD_DIR = Path(__file__).parent / "static" / "console"
STRIPE_JS = "https://js.stripe.com/v3/"
RESERVED = (
    "graphql",
    "healthz",
    "livez",
    "readyz",
    "webhooks",
    "metrics",
    "dev",
    "invoices",
    "teams",
    "console-config.json",
)

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Creditline</title>
<body style="font:15px system-ui,sans-serif;margin:48px;color:#111827">
<h1 style="font-size:20px">The {what} is not built</h1>
<p>Run <code>./scripts/serve</code> (it builds the frontend when needed), or
<code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>.</p></body>"""


def stripe_js_url(settings: Settings) -> str:
    """The emulator's Stripe.js when the API base is a local emulator, else Stripe's own."""
    base = settings.stripe_api_base.rstrip("/")
    host = urlparse(base).hostname or ""
    if base and host != "stripe.com" and not host.endswith(".stripe.com"):
        return f"{base}/js.stripe.com/v3/"
    return STRIPE_JS


def config(settings: Settings) -> dict[str, object]:
    """What the console needs to know before it signs in."""
    key = settings.stripe_publishable_key
    if not key and settings.environment is not Environment.PRODUCTION:
        key = "pk_test_creditline_development"
    return {
        "environment": settings.environment.value,
        "devSignIn": settings.environment in (Environment.DEVELOPMENT, Environment.TEST),
        "graphqlPath": "/graphql",
        "stripeJsUrl": stripe_js_url(settings),
        "stripePublishableKey": key,
        "tokenOrigins": list(settings.cors_allow_origins),
    }


def _is_console_path(path: str) -> bool:
    """A client-side route (no file extension, not an API path): answered with index.html."""
    path = path.strip("/")
    if path in ("", "."):
        return True
    return path.split("/", 1)[0] not in RESERVED and "." not in path.rsplit("/", 1)[-1]


class ConsoleFiles(StaticFiles):
    """Static files with the SPA fallback; HTML is revalidated, hashed assets cached."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.strip("/").split("/", 1)[0] in RESERVED:
            raise HTTPException(status_code=404)  # an API path no route took: never the console
        if not (BUILD_DIR / "index.html").is_file():
            return HTMLResponse(NOT_BUILT.format(what="billing console"), status_code=503)
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or not _is_console_path(path):
                raise
            response = await super().get_response("index.html", scope)
        if path.startswith("assets/") and response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["Cache-Control"] = "no-cache"
        return response


def ide_response() -> Response:
    """GraphiQL from this server's own assets (built from npm packages), never a CDN.

    Read at each request (a small file): a rebuild renames the hashed assets it links.
    """
    page = BUILD_DIR / "ide.html"
    if not page.is_file():
        return HTMLResponse(NOT_BUILT.format(what="GraphQL IDE"), status_code=503)
    return HTMLResponse(page.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


def routes(settings: Settings) -> list[BaseRoute]:
    """`/console-config.json`, then the catch-all static mount: add these last."""

    async def console_config(_request: Request) -> JSONResponse:
        return JSONResponse(config(settings), headers={"Cache-Control": "no-cache"})

    return [
        Route("/console-config.json", console_config, methods=["GET"]),
        Mount("/", app=ConsoleFiles(directory=BUILD_DIR, check_dir=False), name="console"),
    ]
