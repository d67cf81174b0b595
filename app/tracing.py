"""OpenTelemetry tracing: on when OTEL_EXPORTER_OTLP_ENDPOINT is set, else free.

`configure` sets up the SDK once per process: a batch exporter over OTLP/HTTP (the
standard OTEL_* variables apply: OTEL_EXPORTER_OTLP_ENDPOINT and _HEADERS,
OTEL_SERVICE_NAME, default `creditline`, OTEL_TRACES_SAMPLER, OTEL_BSP_SCHEDULE_DELAY...),
and instruments asyncpg, Redis and httpx. `middleware` wraps the ASGI app, whose server
span is the root of every request's tree. `span` opens a span of our own (the usage
path: parse, authenticate, batch wait, the write transaction); while tracing is off it
hands back one shared no-op context manager, so the hot path pays an attribute read and
a call, nothing allocated. docs/deploy.md, "Tracing".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from starlette.middleware import Middleware

from app.config import Settings

SERVICE_NAME = "creditline"
_OFF: AbstractContextManager[None] = nullcontext()
# Set once `configure` has installed a provider; None: tracing is off.
_tracer: trace.Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> AbstractContextManager[Any]:
    """A child span of the current one, current while the block runs; a no-op when off."""
    if _tracer is None:
        return _OFF
    return _tracer.start_as_current_span(name, attributes=attributes)


def configure(settings: Settings) -> bool:
    """Installs the SDK and the instrumentations when an OTLP endpoint is set; once per
    process (later calls only say whether it is on)."""
    global _tracer
    if _tracer is not None:
        return True
    if not settings.otel_exporter_otlp_endpoint:
        return False
    # Imported here, not at the top: a process without tracing never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME, when set, wins over our default (Resource.create reads it).
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(named))
    # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (adding /v1/traces) and the rest.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _tracer = provider.get_tracer("app")
    return True


def shutdown() -> None:
    """Sends the spans still buffered (at the end of the lifespan)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if _tracer is not None and force_flush is not None:
        force_flush(timeout_millis=5000)


def _hide_signed_links(span_: trace.Span, scope: dict[str, Any]) -> None:
    """A signed PDF link is a credential for a day: its query never reaches a trace."""
    if b"signature=" in scope.get("query_string", b""):
        path = scope.get("path", "")
        span_.set_attribute("http.target", path)
        span_.set_attribute("url.query", "REDACTED")
        span_.set_attribute("http.url", path)
        span_.set_attribute("url.full", path)


def middleware() -> list[Middleware]:
    """The ASGI server span around everything else; nothing when tracing is off."""
    if _tracer is None:
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return [
        Middleware(
            OpenTelemetryMiddleware,
            # The per-message receive/send spans say nothing a request's span does not.
            exclude_spans=["receive", "send"],
            server_request_hook=_hide_signed_links,
        )
    ]
