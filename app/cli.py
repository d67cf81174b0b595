"""The `creditline` command (also `python -m app`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from app import db, locks, metrics
from app.billing import collection, sweeper
from app.billing.ledger_audit import audit_with_summary, report
from app.config import Settings, get_settings, refuse_weak_production
from app.events import bus
from app.graphql.schema import schema
from app.invoices import seller
from app.kit.errors import DomainError
from app.logs import configure_logging
from app.payments import gateway
from app.teams import keys, tokens
from app.teams.key_models import ServiceScope


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    # uvicorn's own lines (start-up, a worker that died) in the app's format: it leaves
    # logging alone (log_config=None) and its loggers reach the root handler.
    configure_logging(settings)
    # Before the workers start: they inherit the directory they share their metrics in.
    made = metrics.prepare_multiprocess_dir(args.workers)
    try:
        _run_uvicorn(uvicorn, args, settings)
    finally:
        metrics.remove_multiprocess_dir(made)
    return 0


def _run_uvicorn(uvicorn: Any, args: argparse.Namespace, settings: Settings) -> None:
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
        log_config=None,
        proxy_headers=False,
        # A websocket message is capped like an HTTP body (MAX_REQUEST_BYTES), not at 16 MiB.
        ws_max_size=settings.max_request_bytes,
    )


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
            seller.configure(settings)
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


async def close_month_command(settings: Settings, period: str | None) -> int:
    """`close-month`: exit 0, 1 when a team's invoice failed, 2 when the period is refused."""
    # The scheduler's lock: waits for a pass under way on any replica, so the command and
    # the schedulers never close (and charge) the same month side by side.
    async with locks.advisory_lock(settings, locks.INVOICE_SCHEDULER, wait=True):
        try:
            report = await collection.close_month(period)
        except DomainError as error:
            print(f"close-month: {error.message}", file=sys.stderr)
            return 2
    print(report.summary())
    return 1 if report.errors else 0


def _close_month(args: argparse.Namespace, settings: Settings) -> int:
    async def run(settings: Settings) -> int:
        return await close_month_command(settings, args.period)

    return _run(run)(args, settings)


async def _retry_payments(_settings: Settings) -> int:
    report = await collection.retry_payments(due_only=False)
    print(report.summary())
    return 0


async def expire_credits_command(settings: Settings) -> int:
    """`expire-credits`: one sweep, as the sweeper's pass does it."""
    # The sweepers' lock: waits for a sweep under way on any replica, then sweeps alone.
    async with locks.advisory_lock(settings, locks.CREDITS_SWEEPER, wait=True):
        teams = await sweeper.sweep_once()
    print(f"expired credits or holds of {teams} team(s)")
    return 0


# --- keys: service keys for the platform's own systems (docs/keys.md) ------------------------

CLI_ACTOR = "command line (operator)"


async def _keys_create(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        issued = await keys.create_service_key(args.name, args.scope, actor=CLI_ACTOR)
    except DomainError as error:
        print(f"keys create: {error.message}", file=sys.stderr)
        return 2
    key = issued.key
    # The secret alone on stdout (SECRET=$(creditline keys create ...)); the rest aside.
    print(issued.secret)
    print(
        f"service key {key.id} ({key.prefix}, {key.scopes}): the secret above is shown "
        "once and not stored; keep it now.",
        file=sys.stderr,
    )
    return 0


async def _keys_list(_args: argparse.Namespace, _settings: Settings) -> int:
    def when(at: datetime | None) -> str:
        return at.strftime("%Y-%m-%d %H:%M") if at else "-"

    print("id\tprefix\tname\tscopes\tcreated\tlast used\texpires\trevoked")
    for key in await keys.service_keys():
        used = when(key.last_used_at)
        times = [when(key.created_at), used, when(key.expires_at), when(key.revoked_at)]
        print("\t".join([str(key.id), key.prefix, key.name, key.scopes, *times]))
    return 0


async def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    # The broker of the servers, so each evicts the key at once rather than within
    # API_KEY_CACHE_SECONDS.
    await bus.broker.start(settings.broker_url)
    try:
        key = await keys.revoke_service_key(args.id, actor=CLI_ACTOR)
    except DomainError as error:
        print(f"keys revoke: {error.message}", file=sys.stderr)
        return 2
    finally:
        await bus.broker.stop()
    print(f"revoked {key.id} ({key.prefix})")
    return 0


def _with_db(
    command: Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace, Settings], int]:
    """Runs an async command with the database open (no Stripe: keys never reach it, and
    stdout stays the command's own)."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        async def main() -> int:
            await db.init_db(settings)
            try:
                return await command(args, settings)
            finally:
                await db.close_db()

        return asyncio.run(main())

    return handler


def _add_keys_commands(sub: Any) -> None:
    keys_parser = sub.add_parser("keys", help="service keys for the platform's own systems")
    actions = keys_parser.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="make a service key; prints its secret once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=[s.value for s in ServiceScope],
        help="repeat for several",
    )
    create.set_defaults(handler=_with_db(_keys_create))
    actions.add_parser("list", help="every service key").set_defaults(handler=_with_db(_keys_list))
    revoke = actions.add_parser("revoke", help="revoke a service key, on every server")
    revoke.add_argument("--id", required=True)
    revoke.set_defaults(handler=_with_db(_keys_revoke))


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
        "expire-credits", help="expire due credits and holds now, resume stalled auto top-ups"
    ).set_defaults(handler=_run(expire_credits_command))

    # Reads no settings that matter: runs anywhere, a production image's build included.
    sub.add_parser("export-schema", help="print the GraphQL SDL").set_defaults(
        handler=_export_schema, checks_config=False
    )
    _add_keys_commands(sub)
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
    if getattr(args, "checks_config", True):
        try:
            refuse_weak_production(settings)
        except SystemExit as refusal:
            print(refusal.code, file=sys.stderr)
            return 2
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
