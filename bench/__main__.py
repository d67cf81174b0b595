"""`scripts/bench [--quick] [--json FILE] [SUITE ...]`: starts its own server on
PostgreSQL and prints the figures; exits non-zero if the ledger audit finds any
discrepancy afterwards."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from bench import harness, history, ingest, notifications, sustained, usage


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _print_usage(figures: dict[str, Any]) -> None:
    rows: list[tuple[str, ...]] = [
        (
            "recordUsage",
            "clients",
            "accepted/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "pgbench tps",
            "ratio",
        )
    ]
    for kind in ("hot", "many"):
        for clients, run in figures[kind].items():
            ceiling = figures["pgbench"][clients]
            ratio = run["accepted_per_s"] / ceiling if kind == "hot" else None
            rows.append(
                (
                    "1 hot team" if kind == "hot" else "1,000 teams",
                    str(clients),
                    f"{run['accepted_per_s']:.0f}",
                    f"{run['p50_ms']:.1f}",
                    f"{run['p95_ms']:.1f}",
                    f"{run['p99_ms']:.1f}",
                    f"{ceiling:.0f}",
                    f"{ratio:.2f}x" if ratio is not None else "",
                )
            )
    print(f"{figures['workers']} server workers, {figures['broker']} broker")
    print(_table(rows))
    batch = figures["batch"]
    query = figures["query"]
    noop = figures["noop"]
    ceiling = figures["batch_ceiling"]
    print()
    print(
        _table(
            [
                ("other", "clients", "per second", "p50 ms", "p99 ms", "ratio"),
                (
                    "recordUsageBatch (events)",
                    str(usage.BATCH_CLIENTS),
                    f"{batch['accepted_per_s']:.0f}",
                    f"{batch['p50_ms']:.1f}",
                    f"{batch['p99_ms']:.1f}",
                    f"{batch['accepted_per_s'] / ceiling:.2f}x",
                ),
                (
                    "  ceiling: its writes by pgbench (events)",
                    str(usage.BATCH_CLIENTS),
                    f"{ceiling:.0f}",
                    "",
                    "",
                    "",
                ),
                (
                    "team { credits } (requests)",
                    "64",
                    f"{query['rps']:.0f}",
                    f"{query['p50_ms']:.1f}",
                    f"{query['p99_ms']:.1f}",
                    "",
                ),
                (
                    "no-op endpoint (load generator)",
                    "64",
                    f"{noop['rps']:.0f}",
                    f"{noop['p50_ms']:.1f}",
                    f"{noop['p99_ms']:.1f}",
                    "",
                ),
            ]
        )
    )


def _print_ingest(figures: dict[str, Any]) -> None:
    rows: list[tuple[str, ...]] = [
        ("HTTP ingestion", "clients", "events/s", "first s", "last s", "p50 ms", "p99 ms", "vs PG")
    ]
    update, batch = figures["pgbench_update"], figures["pgbench_batch"]
    for key, label, clients, ceiling in (
        ("v1_hot", "/v1/usage, 1 hot team", ingest.CLIENTS, update),
        ("v1_many", "/v1/usage, 1,000 teams", ingest.CLIENTS, None),
        ("v1_batch", "/v1/usage/batch (events)", usage.BATCH_CLIENTS, batch),
        ("holds", "hold + capture (pairs)", ingest.CLIENTS, None),
        ("graphql_hot", "GraphQL recordUsage, 1 hot team", ingest.CLIENTS, update),
    ):
        run = figures[key]
        rows.append(
            (
                label,
                str(clients),
                f"{run['events_per_s']:.0f}",
                f"{run['first_s']:.0f}",
                f"{run['last_s']:.0f}",
                f"{run['p50_ms']:.1f}",
                f"{run['p99_ms']:.1f}",
                f"{run['events_per_s'] / ceiling:.2f}x" if ceiling else "",
            )
        )
    print(_table(rows))
    print(
        f"PostgreSQL's own ceilings on the same database: one-row UPDATE {update:.0f}/s at "
        f"{ingest.CLIENTS} clients; the batch transaction's writes {batch:.0f} events/s at "
        f"{usage.BATCH_CLIENTS} clients"
    )
    if "isolated" in figures:
        isolated = figures["isolated"]
        print(
            f"hot team isolated to shard {isolated['shard']} in {isolated['seconds']:.1f} s "
            "before the runs"
        )


def _print_sustained(figures: dict[str, Any]) -> None:
    rows: list[tuple[str, ...]] = [
        (
            "/v1/usage, 64 clients",
            "events/s",
            "first 10 s",
            "last 10 s",
            "first s",
            "last s",
            "p99 ms",
            "seq scans (usage, ledger)",
        )
    ]
    for key, label in (
        ("preloaded", f"team with {figures['records']:,} records"),
        ("fresh", "fresh team"),
    ):
        run = figures[key]
        scans = run["seq_scans"]
        rows.append(
            (
                label,
                f"{run['requests'] / run['duration_s']:.0f}",
                f"{run['first_10s']:.0f}",
                f"{run['last_10s']:.0f}",
                f"{run['first_s']:.0f}",
                f"{run['last_s']:.0f}",
                f"{run['p99_ms']:.1f}",
                f"{scans['usage_records']}, {scans['ledger_entries']}",
            )
        )
    print(_table(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument(
        "suites",
        nargs="*",
        help="ingest, usage, sustained, subscriptions, notifications (default: these five); "
        "history (10M records: only when named)",
    )
    parser.add_argument("--quick", action="store_true", help="short runs")
    parser.add_argument("--json", dest="json_file", help="also write the figures as JSON")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--seconds", type=float, help="length of each run (default 30, quick 3)")
    parser.add_argument(
        "--database",
        help="run in this existing database (history: one loaded by an earlier --keep run, "
        "so the 10M-record preload is not repeated)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--isolate-hot",
        action="store_true",
        help="ingest on Citus: move the hot team to a shard of its own before the runs",
    )
    args, rest = parser.parse_known_args(argv)
    suites = args.suites or ["ingest", "usage", "sustained", "subscriptions", "notifications"]
    harness.require_tools()
    # Sustained figures: short runs overstate the hot path (caches warm, no vacuum yet).
    seconds = args.seconds or (3.0 if args.quick else 30.0)
    figures: dict[str, Any] = {"quick": args.quick, "workers": args.workers}
    database = harness.Database(args.database) if args.database else harness.Database.create()
    failed = False
    try:
        harness.migrate(database)
        if "ingest" in suites or "usage" in suites:
            hot = harness.create_teams(database, 1)
            many = harness.create_teams(database, 1000)
        if "ingest" in suites:
            server = harness.Server(
                harness.server_env(database, BROKER_URL=harness.REDIS_URL), workers=args.workers
            )
            try:
                figures["ingest"] = ingest.run(
                    database,
                    server,
                    seconds=seconds,
                    hot_team=hot[0],
                    many_teams=many,
                    isolate_hot=args.isolate_hot,
                )
            finally:
                server.stop()
            print(f"{args.workers} server workers, redis broker, {seconds:.0f} s runs")
            _print_ingest(figures["ingest"])
            print()
        if "usage" in suites:
            figures["noop"] = usage.noop_ceiling(seconds)
            # Workers announce balance changes through Redis, as a deployment of several
            # must (a memory:// broker reaches only its own process's subscribers).
            broker = "redis" if args.workers > 1 else "memory"
            figures["broker"] = broker
            extra = {"BROKER_URL": harness.REDIS_URL} if broker == "redis" else {}
            server = harness.Server(harness.server_env(database, **extra), workers=args.workers)
            try:
                figures.update(
                    usage.run(database, server, seconds=seconds, hot_team=hot[0], many_teams=many)
                )
                figures["server_memory_mb"] = server.memory_mb()
            finally:
                server.stop()
            _print_usage(figures)
        if "history" in suites:
            figures["history"] = history.run(
                database,
                quick=args.quick,
                seconds=seconds,
                workers=args.workers,
                preloaded=args.database is not None,
            )
        if "sustained" in suites:
            figures["sustained"] = sustained.run(
                database,
                seconds=20.0 if args.quick else 60.0,
                workers=args.workers,
                records=100_000 if args.quick else sustained.PRELOAD,
            )
            print()
            _print_sustained(figures["sustained"])
        if "notifications" in suites:
            figures["notifications"] = found = notifications.run(
                database, seconds=seconds, workers=args.workers
            )
            print(
                f"\n{args.workers} server workers, {seconds:.0f} s runs, {ingest.CLIENTS} clients"
            )
            print(_table(notifications.report(found)))
            print(
                f"delivered meanwhile (on): {found['emails']} emails, "
                f"{found['webhooks']} webhooks; "
                f"{found['deliveries_pending']} pending at the end; teams blocked: "
                f"{found['on']['blocked_teams']:.0f} (on), "
                f"{found['off']['blocked_teams']:.0f} (off)"
            )
        if "subscriptions" in suites:
            try:
                subscriptions = importlib.import_module("bench.subscriptions")
            except ModuleNotFoundError:
                print("\n(subscriptions benchmark not available)")
            else:
                figures["subscriptions"] = subscriptions.main_from_harness(
                    database, quick=args.quick, argv=rest, workers=args.workers
                )
        discrepancies = harness.audit(database)
        figures["ledger_discrepancies"] = len(discrepancies)
        print(f"\nledger audit: {len(discrepancies)} discrepancies")
        for line in discrepancies[:20]:
            print("  " + line)
        failed = bool(discrepancies)
    finally:
        if args.keep or args.database:
            print(f"database kept: {database.name}")
        else:
            database.drop()
    if args.json_file:
        with open(args.json_file, "w") as out:
            json.dump(figures, out, indent=2, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
