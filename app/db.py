"""Database set-up: Tortoise configuration, start-up, migrations."""

from __future__ import annotations

import pkgutil
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as tortoise_migrate

from app import distribution, locks
from app.config import Settings, get_settings

# Where Tortoise's migrate records what it applied.
MIGRATIONS_TABLE = "tortoise_migrations"

# One Tortoise app per domain, each with its own migration history under migrations/<app>/.
APPS: dict[str, list[str]] = {
    "teams": ["app.teams.models", "app.teams.key_models"],
    "credits": ["app.credits.models"],
    "payments": ["app.payments.models"],
    "invoices": ["app.invoices.models"],
    "audit": ["app.teams.audit.models"],
    "notifications": ["app.events.outbox", "app.notifications.models"],
}


def connection_url(settings: Settings) -> str:
    """The Tortoise URL, with the PostgreSQL pool sized from settings."""
    url = settings.database_url
    if settings.is_sqlite:
        path = url.removeprefix("sqlite://")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("minsize", "1")
    query.setdefault("maxsize", str(settings.database_pool_size))
    scheme = "postgres" if parts.scheme in ("postgresql", "asyncpg") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


async def _keep_session(_connection: object) -> None:
    """Connections go back to the pool without asyncpg's RESET ALL round trip: the
    service never changes session state on them (no SET or LISTEN; advisory locks take
    connections of their own, `app.locks`), and every query outside a transaction would
    otherwise pay one extra round trip."""


# Session settings of every pooled PostgreSQL connection. Citus rewrites each catalog
# query of a session to hide shards from pg_class, a function call per pg_class row:
# asyncpg's type introspection (once per connection and array or row type) then took
# 0.6 to 2 s a type on the coordinator instead of 4 ms (docs/scaling.md, "Connections
# on Citus"). The service reads the catalog only by table name, so it never needs shards
# hidden. Plain PostgreSQL keeps `citus.*` as an unused placeholder.
SERVER_SETTINGS = {"citus.override_table_visibility": "off"}
APPLICATION_NAME = "creditline"


def _connection(settings: Settings) -> str | dict[str, Any]:
    url = connection_url(settings)
    if settings.is_sqlite:
        return url
    config = expand_db_url(url)
    credentials = config["credentials"]
    credentials["reset"] = _keep_session
    credentials["server_settings"] = {**SERVER_SETTINGS, **credentials.get("server_settings", {})}
    # Named in pg_stat_activity unless the URL names it (`?application_name=`).
    credentials.setdefault("application_name", APPLICATION_NAME)
    return config


def tortoise_config(settings: Settings) -> dict[str, Any]:
    return {
        "connections": {"default": _connection(settings)},
        "apps": {
            label: {
                "models": modules,
                "default_connection": "default",
                "migrations": f"migrations.{label}",
            }
            for label, modules in APPS.items()
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(settings: Settings) -> None:
    """Open the ORM for this process (the global context, so every task sees it)."""
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


async def migrate(settings: Settings) -> list[str]:
    """Apply every pending migration under `migrations/`; returns the names applied.

    On PostgreSQL under an advisory lock: replicas started together migrate one after
    another, so the first applies everything and the others find nothing pending. On
    Citus the same lock covers placing the tables (`app.distribution.apply`: a no-op
    elsewhere, and once every table is placed)."""
    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app_label}.{name}")

    async with locks.advisory_lock(settings, locks.MIGRATE, wait=True):
        try:
            await tortoise_migrate(config=tortoise_config(settings), progress=progress)
            await distribution.apply(connections.get("default"))
        finally:
            # Open connections (aiosqlite's thread) would keep a failed run from exiting.
            await Tortoise.close_connections()
    return applied


def disk_migrations() -> set[str]:
    """Every migration under `migrations/`, as `app.name` (what the recorder table holds)."""
    names = set()
    for label in APPS:
        package = import_module(f"migrations.{label}")
        for module in pkgutil.iter_modules(package.__path__):
            if not module.ispkg and module.name[0] not in "_~":
                names.add(f"{label}.{module.name}")
    return names


async def pending_migrations() -> list[str]:
    """Migrations on disk that the open database has not applied (all, before the first)."""
    try:
        _, rows = await connections.get("default").execute_query(
            f'SELECT app, name FROM "{MIGRATIONS_TABLE}"'
        )
    except Exception as exc:
        if MIGRATIONS_TABLE not in str(exc):
            raise
        rows = []
    applied = {f"{row['app']}.{row['name']}" for row in rows}
    return sorted(disk_migrations() - applied)


def __getattr__(name: str) -> Any:
    # TORTOISE_ORM, read lazily, is for Tortoise's own command line (see pyproject.toml).
    if name == "TORTOISE_ORM":
        return tortoise_config(get_settings())
    raise AttributeError(name)


async def pending_model_changes(settings: Settings) -> list[str]:
    """Names of the migrations `makemigrations` would write now (empty when none)."""
    from tortoise.context import TortoiseContext
    from tortoise.migrations.autodetector import MigrationAutodetector

    config = tortoise_config(settings)
    async with TortoiseContext() as context:
        await context.init(config=config)
        assert context.apps is not None
        writers = await MigrationAutodetector(context.apps, config["apps"]).changes()
    return [f"{writer.app_label}.{writer.name}" for writer in writers]
