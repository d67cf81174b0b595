"""The `creditline` command (also `python -m app`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from app import db
from app.billing import collection, sweeper
from app.billing.ledger_audit import audit_with_summary, report
from app.config import Settings, get_settings
from app.graphql.schema import schema
from app.kit.errors import DomainError
from app.payments import gateway
from app.teams import tokens


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        # The sans-I/O implementation: a client that stops reading blocks only its own sends.
        ws="websockets-sansio",
        # Balance messages are a few hundred bytes: compressing each costs more CPU (on both
        # ends) than it saves; a thousand widgets on one team get one message each per change.
        ws_per_message_deflate=False,
        lifespan="on",
        log_level="warning",
        proxy_headers=False,
        # A websocket message is capped like an HTTP body (MAX_REQUEST_BYTES), not at 16 MiB.
        ws_max_size=settings.max_request_bytes,
    )
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(db.migrate(settings))
    # Replicas that waited for another's migration find nothing left: not an error.
    print(f"applied {len(applied)} migration(s)" if applied else "no migration pending")
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    email = args.email.strip().lower()
    print(
        tokens.mint(
            settings.jwt_secret(),
            subject=args.subject or f"email:{email}",
            email=email,
            name=args.name,
            operator=args.operator,
            ttl=timedelta(seconds=args.ttl),
        )
    )
    return 0


def _export_schema(_args: argparse.Namespace, _settings: Settings) -> int:
    print(schema.as_str())
    return 0


def _run(
    coro: Callable[[Settings], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace, Settings], int]:
    """Runs an async command with the database and the Stripe client open."""

    def command(_args: argparse.Namespace, settings: Settings) -> int:
        async def main() -> int:
            await db.init_db(settings)
            gateway.init_gateway(settings)
            try:
                return await coro(settings)
            finally:
                await gateway.close_gateway()
                await db.close_db()

        return asyncio.run(main())

    return command


async def _audit(_settings: Settings) -> int:
    found, summary = await audit_with_summary()
    print(report(found, summary))
    return 1 if found else 0


def _close_month(args: argparse.Namespace, settings: Settings) -> int:
    async def run(_settings: Settings) -> int:
        try:
            report = await collection.close_month(args.period)
        except DomainError as error:
            print(f"close-month: {error.message}", file=sys.stderr)
            return 2
        print(report.summary())
        return 1 if report.errors else 0

    return _run(run)(args, settings)


async def _retry_payments(_settings: Settings) -> int:
    report = await collection.retry_payments(due_only=False)
    print(report.summary())
    return 0


async def _expire_credits(_settings: Settings) -> int:
    teams = await sweeper.sweep_once()
    print(f"expired credits of {teams} team(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creditline", description="Creditline team billing.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=_migrate)

    token = sub.add_parser("token", help="print a signed bearer token")
    token.add_argument("--email", required=True)
    token.add_argument("--name")
    token.add_argument("--subject", help="the stable user id (default: email:<email>)")
    token.add_argument("--operator", action="store_true")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="lifetime in seconds")
    token.set_defaults(handler=_token)

    sub.add_parser(
        "audit", help="check the ledger's invariants; exits 1 listing each discrepancy"
    ).set_defaults(handler=_run(_audit))

    close = sub.add_parser(
        "close-month", help="issue and charge monthly usage invoices (safe to run again)"
    )
    close.add_argument("--period", help="YYYY-MM (default: the previous month, UTC)")
    close.set_defaults(handler=_close_month)

    sub.add_parser(
        "retry-payments", help="charge every unpaid monthly invoice again, now"
    ).set_defaults(handler=_run(_retry_payments))

    sub.add_parser(
        "expire-credits", help="write due expiries now and resume stalled auto top-ups"
    ).set_defaults(handler=_run(_expire_credits))

    sub.add_parser("export-schema", help="print the GraphQL SDL").set_defaults(
        handler=_export_schema
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "setting"
        print(f"configuration error: {name}: {first['msg']}", file=sys.stderr)
        return 2
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
