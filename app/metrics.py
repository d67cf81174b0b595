"""Prometheus metrics: what `/metrics` exposes, and the cheap hooks that feed it.

Label values come from the schema or fixed lists, never raw from clients, so a client
cannot grow the series without bound: GraphQL operation names are kept as given for the
first `MAX_OPERATION_NAMES` distinct ones and counted as "other" after that.

With `serve --workers N` the workers share their counts through files
(prometheus_client's multiprocess mode): `serve` points PROMETHEUS_MULTIPROC_DIR at a fresh
directory before the workers start (`prepare_multiprocess_dir`), each worker writes its
samples there, and a scrape answered by any worker sums them all (`scrape_registry`). A
dead worker's counts stay in the sum (a counter never goes back); its live gauges are
dropped. Each replica has its own directory, and Prometheus scrapes every replica.
Collectors that read a worker's memory at scrape time (open subscriptions, in
app/billing/live.py) describe the worker that answered.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from graphql import FieldNode, OperationDefinitionNode
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

MAX_OPERATION_NAMES = 200
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

registry: CollectorRegistry = REGISTRY
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_WORKER_FILE = re.compile(r"_(\d+)\.db$")
# Collectors read from this process's memory at scrape time (register_local).
_local_collectors: list[Collector] = []

graphql_requests = Counter(
    "creditline_graphql_requests_total",
    "GraphQL operations by operation name, type and outcome (ok, or error: a top-level error).",
    ["operation", "type", "outcome"],
    registry=registry,
)
graphql_latency = Histogram(
    "creditline_graphql_request_seconds",
    "Time to parse, validate and execute a GraphQL query or mutation.",
    ["operation", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=registry,
)
usage_events = Counter(
    "creditline_usage_events_total",
    "Usage events by outcome (accepted, rejected) and reason (an ErrorCode; empty if accepted).",
    ["outcome", "reason"],
    registry=registry,
)
http_responses = Counter(
    "creditline_http_responses_total",
    "HTTP responses by route and status code.",
    ["route", "status"],
    registry=registry,
)
rate_limited = Counter(
    "creditline_rate_limited_total",
    "Requests refused with RATE_LIMITED, by the bucket that was empty (user, operator, team, "
    "address).",
    ["scope"],
    registry=registry,
)
webhook_events = Counter(
    "creditline_webhook_events_total",
    "Stripe webhook deliveries by outcome (handled, ignored, duplicate, rejected, too_large, "
    "unavailable, error).",
    ["outcome"],
    registry=registry,
)


_operation_names: set[str] = set()
# Label children by their values: `labels()` takes a lock and builds a key on every call.
_children: dict[tuple[object, ...], Any] = {}


def child(metric: Counter | Histogram, *values: str) -> Any:
    """`metric.labels(*values)`, cached (the hot path counts every request)."""
    key = (metric, *values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found


def operation_label(name: str | None, document: Any) -> str:
    """A bounded label for an operation: its name, else its root fields."""
    if not name:
        name = _root_fields(document)
    if name in _operation_names:
        return name
    if not _NAME.match(name.replace(",", "_")) or len(_operation_names) >= MAX_OPERATION_NAMES:
        return "other"
    _operation_names.add(name)
    return name


def _root_fields(document: Any) -> str:
    for definition in getattr(document, "definitions", ()):
        if isinstance(definition, OperationDefinitionNode):
            names = sorted(
                {
                    s.name.value
                    for s in definition.selection_set.selections
                    if isinstance(s, FieldNode)
                }
            )
            return ",".join(names[:3]) or "anonymous"
    return "anonymous"


class GraphQLMetrics(SchemaExtension):
    """Counts every operation and times queries and mutations (not subscriptions' lifetime)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:  # noqa: BLE001 - unparsable document: no operation type
            kind = "unknown"
        label = operation_label(context.operation_name, context.graphql_document)
        errors = context.result.errors if context.result is not None else None
        errors = errors or context.pre_execution_errors
        child(graphql_requests, label, kind, "error" if errors else "ok").inc()
        if kind != "subscription":
            child(graphql_latency, label, kind).observe(time.perf_counter() - started)


def count_usage(reasons: Iterable[str | None]) -> None:
    """One count per usage event: None for accepted, else the rejection's error code."""
    accepted = 0
    rejected: dict[str, int] = {}
    for reason in reasons:
        if reason is None:
            accepted += 1
        else:
            rejected[reason] = rejected.get(reason, 0) + 1
    if accepted:
        child(usage_events, "accepted", "").inc(accepted)
    for reason, count in rejected.items():
        child(usage_events, "rejected", reason).inc(count)


def count_webhooks(
    endpoint_: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Wraps the Stripe webhook endpoint to count deliveries by outcome, from its response:
    handled, ignored (a type we do not handle), duplicate (an event already in the inbox),
    rejected (bad signature or not an event), too_large, unavailable (Stripe or config:
    Stripe retries), error."""

    async def counted(request: Request) -> Response:
        try:
            response = await endpoint_(request)
        except Exception:
            webhook_events.labels("error").inc()
            raise
        webhook_events.labels(_webhook_outcome(response)).inc()
        return response

    return counted


def _webhook_outcome(response: Response) -> str:
    status = response.status_code
    if status == 200:
        try:
            outcome = json.loads(bytes(response.body)).get("outcome")
        except (ValueError, AttributeError):
            outcome = None
        return outcome if outcome in ("duplicate", "ignored") else "handled"
    return {400: "rejected", 413: "too_large", 503: "unavailable"}.get(status, "error")


async def endpoint(request: Request) -> Response:
    """`GET /metrics` in Prometheus' text format, for the scraper only: with METRICS_TOKEN
    set it needs `Authorization: Bearer METRICS_TOKEN`; in production without one it is
    closed (404), since the counters describe every tenant's traffic."""
    settings = getattr(request.app.state, "settings", None)
    token = getattr(settings, "metrics_token", "")
    if token:
        sent = request.headers.get("authorization", "")
        expected = f"Bearer {token}"
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            return Response(
                "metrics need a bearer token\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                media_type="text/plain",
            )
    elif getattr(settings, "environment", None) == "production":
        return Response("not found\n", status_code=404, media_type="text/plain")
    return Response(generate_latest(scrape_registry()), media_type=CONTENT_TYPE_LATEST)


def register_local(collector: Collector) -> None:
    """Registers a collector that reads this process's state when scraped."""
    registry.register(collector)
    _local_collectors.append(collector)


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: this process's registry, or with PROMETHEUS_MULTIPROC_DIR set
    every worker's samples summed from their files, plus this process's local collectors."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return registry
    mark_dead_workers(path)
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=path)  # type: ignore[no-untyped-call]
    for collector in _local_collectors:
        merged.register(collector)
    return merged


def mark_dead_workers(path: str) -> list[int]:
    """Drops the live gauges of workers that are gone (their counters stay summed); the
    pids it found dead. A directory listing per scrape: a few files per worker."""
    pids = set()
    for name in os.listdir(path):
        found = _WORKER_FILE.search(name)
        if found:
            pids.add(int(found.group(1)))
    dead = [pid for pid in sorted(pids) if not _alive(pid)]
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a worker killed but not yet reaped by its supervisor is a zombie: gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def prepare_multiprocess_dir(workers: int) -> str | None:
    """Before `serve` starts its workers: with PROMETHEUS_MULTIPROC_DIR set, empties that
    directory (samples of an earlier run would otherwise be summed in); with several
    workers and none set, makes a temporary one and sets it for the workers to inherit.
    Returns the directory `serve` made (to remove at exit), else None."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.remove(os.path.join(given, name))
        return None
    if workers <= 1:
        return None  # one process: its own registry is the whole picture
    made = tempfile.mkdtemp(prefix="creditline-metrics-")
    os.environ[MULTIPROC_ENV] = made
    return made


def remove_multiprocess_dir(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)
