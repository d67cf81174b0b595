"""`scripts/bench subscriptions [options]`: live balances under load.

Opens S websocket subscribers (`creditsUpdated`, one connection each) spread over T
teams, makes E usage changes over HTTP at a steady rate, then waits until every
subscriber shows its team's final balance. Prints delivered final states / expected,
latency from commit to receipt (p50, p95, p99), messages per second and server memory.

The server stamps each balance message with commit times (taken right after the commit).
A message's latency counts from the oldest change it is the first to show its subscriber
(`extensions.pendingSince`): changes coalesce, so that is the change that waited longest.
Subscribers run in separate client processes so that parsing thousands of messages does
not slow the process that makes the changes. Server and clients share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import queue
import resource
import time
import uuid
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx

from bench import harness

QUERY = (
    "subscription($t: ID!) { creditsUpdated(teamId: $t) "
    "{ total free promotional prepaid invoicedRemaining status updatedAt } }"
)
USAGE = (
    "mutation($t: ID!, $a: Decimal!, $k: String!) { recordUsage(input: "
    "{teamId: $t, amount: $a, idempotencyKey: $k}) { errors { code } } }"
)
TOTAL = "query($t: ID!) { team(id: $t) { credits { total } } }"
DEFAULT_REDIS = harness.REDIS_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subscribers", type=int, default=1000, help="websocket subscribers")
    parser.add_argument("--teams", type=int, default=1, help="teams they watch, evenly")
    parser.add_argument("--changes", type=int, default=0, help="usage events (default 200)")
    parser.add_argument("--rate", type=float, default=10.0, help="changes per second")
    parser.add_argument(
        "--broker", choices=("memory", "redis"), help="default: redis with 2+ workers"
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--client-procs", type=int, default=1, help="subscriber processes")
    parser.add_argument("--settle", type=float, default=60.0, help="max wait for final states")


@dataclass
class Options:
    subscribers: int
    teams: int
    changes: int
    rate: float
    broker: str
    redis_url: str
    client_procs: int
    settle: float
    workers: int


def parse(argv: list[str] | None, *, quick: bool, workers: int) -> Options:
    parser = argparse.ArgumentParser(prog="scripts/bench subscriptions")
    add_arguments(parser)
    args = parser.parse_args(argv or [])
    changes = args.changes or (50 if quick else 200)
    broker = args.broker or ("redis" if workers > 1 else "memory")
    if broker == "memory" and workers > 1:
        parser.error("--broker memory cannot serve several workers")
    if args.teams < 1 or args.subscribers < args.teams:
        parser.error("need at least one subscriber per team")
    return Options(
        subscribers=args.subscribers,
        teams=args.teams,
        changes=changes,
        rate=args.rate,
        broker=broker,
        redis_url=args.redis_url,
        client_procs=max(1, args.client_procs),
        settle=args.settle,
        workers=workers,
    )


# --- the subscriber processes ------------------------------------------------------------


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _Subscriber:
    __slots__ = ("last_total", "latencies", "messages", "team")

    def __init__(self, team: str) -> None:
        self.team = team
        self.last_total: str | None = None
        self.latencies: list[float] = []
        self.messages = 0


async def _subscribe(url: str, token: str, sub: _Subscriber) -> Any:
    import websockets
    from websockets.typing import Subprotocol

    ws = await websockets.connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=60, max_size=2**20
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": token}}))
    ack = json.loads(await ws.recv())
    if ack.get("type") != "connection_ack":
        raise RuntimeError(f"not acknowledged: {ack}")
    payload = {"query": QUERY, "variables": {"t": sub.team}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    first = json.loads(await ws.recv())
    sub.last_total = first["payload"]["data"]["creditsUpdated"]["total"]
    return ws


async def _read(ws: Any, sub: _Subscriber, counting: asyncio.Event) -> None:
    import websockets

    try:
        async for raw in ws:
            received = time.time()
            message = json.loads(raw)
            if message.get("type") == "ping":
                await ws.send('{"type":"pong"}')
                continue
            if message.get("type") != "next":
                continue
            payload = message["payload"]
            sub.last_total = payload["data"]["creditsUpdated"]["total"]
            if counting.is_set():
                sub.messages += 1
                # From the oldest change this message is the first to show (changes
                # coalesce): the longest any change waited to reach this subscriber.
                since = (payload.get("extensions") or {}).get("pendingSince")
                if since is not None:
                    sub.latencies.append((received - since) * 1000)
    except websockets.ConnectionClosed:
        pass


async def _client_main(
    url: str, token: str, teams: list[str], commands: Any, results: Any, go: Event
) -> None:
    subs = [_Subscriber(team) for team in teams]
    gate = asyncio.Semaphore(100)
    counting = asyncio.Event()

    async def open_one(sub: _Subscriber) -> Any:
        async with gate:
            return await _subscribe(url, token, sub)

    sockets = await asyncio.gather(*(open_one(sub) for sub in subs))
    pairs = zip(sockets, subs, strict=True)
    readers = [asyncio.create_task(_read(ws, sub, counting)) for ws, sub in pairs]
    results.put(("ready", len(subs)))
    # A process-wide event: wait for it off the loop.
    await asyncio.to_thread(go.wait)
    counting.set()
    started = time.time()
    # Wait for the final totals, then until every subscriber shows its team's.
    finals, settle = await asyncio.to_thread(commands.get)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if all(sub.last_total == finals[sub.team] for sub in subs):
            break
        await asyncio.sleep(0.05)
    finished = time.time()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    results.put(
        (
            "done",
            {
                "delivered": sum(sub.last_total == finals[sub.team] for sub in subs),
                "messages": sum(sub.messages for sub in subs),
                "latencies": [lat for sub in subs for lat in sub.latencies],
                "started": started,
                "finished": finished,
            },
        )
    )


def _client_process(
    url: str, token: str, teams: list[str], commands: Any, results: Any, go: Event
) -> None:
    _raise_fd_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_client_main(url, token, teams, commands, results, go))
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which fails the run
        results.put(("error", repr(exc)))


# --- the driver ---------------------------------------------------------------------------


def _cpu_seconds(server: harness.Server) -> float:
    """CPU time (user + system) of the server and its worker processes so far."""
    pids = [server.process.pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{server.process.pid}/task").iterdir():
            children = (task / "children").read_text().split()
            pids += [int(child) for child in children]
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


async def _make_changes(base: str, token: str, teams: list[str], opts: Options) -> float:
    """Usage events at a steady rate, round-robin over the teams; returns seconds taken."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=32)
    inflight = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as http:

        async def one(index: int) -> None:
            async with inflight:
                variables = {
                    "t": teams[index % len(teams)],
                    "a": f"0.{(index % 97) + 1:04d}",
                    "k": f"bench-sub-{uuid.uuid4().hex}",
                }
                response = await http.post(
                    "/graphql", json={"query": USAGE, "variables": variables}
                )
                answer = response.json()
                errors = answer.get("errors") or answer["data"]["recordUsage"]["errors"]
                if errors:
                    raise RuntimeError(f"usage failed: {errors}")

        start = time.monotonic()
        tasks = []
        for index in range(opts.changes):
            delay = start + index / opts.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
        return time.monotonic() - start


async def _finals(base: str, token: str, teams: list[str]) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        finals = {}
        for team in teams:
            response = await http.post("/graphql", json={"query": TOTAL, "variables": {"t": team}})
            finals[team] = response.json()["data"]["team"]["credits"]["total"]
        return finals


def _collect(results: Any, kind: str, count: int, timeout: float) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        try:
            tag, value = results.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(f"subscriber processes: {len(got)}/{count} {kind}") from None
        if tag == "error":
            raise RuntimeError(f"a subscriber process failed: {value}")
        if tag == kind:
            got.append(value)
    return got


def run(database: harness.Database, opts: Options) -> dict[str, Any]:
    _raise_fd_limit()
    teams = harness.create_teams(database, opts.teams)
    extra = {"BROKER_URL": "memory://" if opts.broker == "memory" else opts.redis_url}
    server = harness.Server(harness.server_env(database, **extra), workers=opts.workers)
    token = harness.token("bench-subscriptions@platform.example", operator=True)
    ws_url = server.url.replace("http://", "ws://") + "/graphql"
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    go = context.Event()
    commands = [context.Queue() for _ in range(opts.client_procs)]
    # Subscriber i watches team i % T; each process takes every P-th subscriber.
    assignment = [teams[i % len(teams)] for i in range(opts.subscribers)]
    procs = [
        context.Process(
            target=_client_process,
            args=(ws_url, f"Bearer {token}", assignment[p :: opts.client_procs], commands[p]),
            kwargs={"results": results, "go": go},
            daemon=True,
        )
        for p in range(opts.client_procs)
    ]
    memory_peak = 0.0
    try:
        for proc in procs:
            proc.start()
        opened_at = time.monotonic()
        _collect(results, "ready", len(procs), timeout=300)
        connect_s = time.monotonic() - opened_at
        memory_subscribed = server.memory_mb()
        cpu_before = _cpu_seconds(server)
        go.set()
        sampling = True

        async def drive() -> tuple[float, dict[str, str]]:
            nonlocal memory_peak

            async def sample() -> None:
                nonlocal memory_peak
                while sampling:
                    memory_peak = max(memory_peak, await asyncio.to_thread(server.memory_mb))
                    await asyncio.sleep(1)

            sampler = asyncio.create_task(sample())
            try:
                seconds = await _make_changes(server.url, token, teams, opts)
                finals = await _finals(server.url, token, teams)
            finally:
                sampler.cancel()
            return seconds, finals

        change_s, finals = asyncio.run(drive())
        sampling = False
        for command in commands:
            command.put((finals, opts.settle))
        done = _collect(results, "done", len(procs), timeout=opts.settle + 120)
        memory_peak = max(memory_peak, server.memory_mb())
        cpu_used = _cpu_seconds(server) - cpu_before
    finally:
        server.stop()
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    latencies = [lat for part in done for lat in part["latencies"]]
    messages = sum(part["messages"] for part in done)
    span = max(p["finished"] for p in done) - min(p["started"] for p in done)
    return {
        "subscribers": opts.subscribers,
        "teams": opts.teams,
        "workers": opts.workers,
        "broker": opts.broker,
        "changes": opts.changes,
        "rate": opts.rate,
        "delivered": sum(part["delivered"] for part in done),
        "expected": opts.subscribers,
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": max(latencies, default=math.nan),
        "messages": messages,
        "messages_per_s": messages / span if span > 0 else math.nan,
        "connect_s": connect_s,
        "change_s": change_s,
        "server_mb_subscribed": memory_subscribed,
        "server_mb_peak": memory_peak,
        "server_cpu_s": cpu_used,
        "server_cpu_us_per_message": cpu_used / messages * 1e6 if messages else math.nan,
    }


def table(figures: dict[str, Any]) -> str:
    head = (
        "subscribers",
        "teams",
        "workers",
        "broker",
        "changes",
        "final states",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "msgs/s",
        "server MB",
    )
    row = (
        f"{figures['subscribers']:,}",
        f"{figures['teams']:,}",
        str(figures["workers"]),
        figures["broker"],
        f"{figures['changes']} @ {figures['rate']:g}/s",
        f"{figures['delivered']:,}/{figures['expected']:,}",
        f"{figures['p50_ms']:.1f}",
        f"{figures['p95_ms']:.1f}",
        f"{figures['p99_ms']:.1f}",
        f"{figures['messages_per_s']:,.0f}",
        f"{figures['server_mb_subscribed']:.0f} / {figures['server_mb_peak']:.0f} peak",
    )
    widths = [max(len(a), len(b)) for a, b in zip(head, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(head, widths, strict=True)),
        "  ".join("-" * w for w in widths),
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)),
    ]
    return "\n".join(lines)


def main_from_harness(
    database: harness.Database,
    *,
    quick: bool = False,
    argv: list[str] | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """The `subscriptions` suite of `scripts/bench`, on the harness's database."""
    opts = parse(argv, quick=quick, workers=workers)
    figures = run(database, opts)
    print()
    print(table(figures))
    print(
        f"({figures['messages']:,} messages; connecting took {figures['connect_s']:.1f} s; "
        f"changes took {figures['change_s']:.1f} s; latency max {figures['max_ms']:.0f} ms; "
        f"server CPU {figures['server_cpu_s']:.1f} s, "
        f"{figures['server_cpu_us_per_message']:.0f} us per message with the changes)"
    )
    if figures["delivered"] != figures["expected"]:
        print("NOT every subscriber reached its team's final balance")
    return figures


__all__ = ["add_arguments", "main_from_harness", "run", "table"]
