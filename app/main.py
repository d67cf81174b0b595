"""The Starlette application: routes and the lifespan that opens the database."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from app import console, db, devauth, metrics
from app.billing import live, sweeper
from app.billing.scheduler import InvoiceScheduler
from app.config import Settings, get_settings
from app.credits import store
from app.graphql.view import GraphQLView
from app.http import exports, health, holds, invoice_pdfs, middleware, usage
from app.http.stripe_webhooks import stripe_webhook
from app.logs import configure_logging
from app.payments import gateway
from app.teams import keyring


def create_app(settings: Settings | None = None, *, manage_db: bool = True) -> Starlette:
    """The ASGI app; `manage_db=False` when the caller (a test) opens the database and
    the Stripe client (`gateway.init_gateway`) itself."""
    settings = settings or get_settings()
    configure_logging(settings)

    # Closes each month, retries failed payments, catches up on Stripe address syncs. Every
    # worker of every replica runs one, but a pass runs in one of them at a time (an
    # advisory lock); SCHEDULER=off starts neither job here.
    scheduler = InvoiceScheduler(settings)
    jobs = manage_db and settings.scheduler
    keyring.ring.cache_seconds = settings.api_key_cache_seconds
    store.set_rollups(settings.usage_rollups)
    # Evicts revoked keys on the broker's word; writes keys' last uses in batches.
    key_upkeep = keyring.Upkeep(settings.api_key_last_used_flush_seconds)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if manage_db:
            await db.init_db(settings)
            gateway.init_gateway(settings)
        if jobs:
            scheduler.start()
        # Expires credits on time, resumes stalled auto top-ups.
        sweeping = sweeper.start_sweeper(settings) if jobs else None
        try:
            await live.start(settings.broker_url, settings.subscription_access_recheck_seconds)
            await key_upkeep.start()
            # What start-up built (modules, the schema, pools) lives as long as the process:
            # out of the collector's reach, so a full collection does not scan them while
            # every request in flight waits.
            gc.freeze()
            yield
        finally:
            await key_upkeep.stop()
            await live.stop()
            await sweeper.stop_sweeper(sweeping)
            await scheduler.stop()
            if manage_db:
                await gateway.close_gateway()
                await db.close_db()

    view = GraphQLView(settings)
    routes = [
        # First: the router tries routes in order, and every usage event comes here.
        Route("/graphql", view, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", view),
        *usage.ROUTES,
        *health.ROUTES,
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/webhooks/stripe", metrics.count_webhooks(stripe_webhook), methods=["POST"]),
        *invoice_pdfs.ROUTES,
        *exports.ROUTES,
        *holds.ROUTES,
    ]
    # Last: the console's static mount answers every path no route above took.
    routes += [*devauth.routes(settings), *console.routes(settings)]
    starlette = Starlette(
        routes=routes, lifespan=lifespan, middleware=middleware.middleware(settings)
    )
    starlette.state.settings = settings
    return starlette


app = create_app()
