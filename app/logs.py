"""Structured logs: every line one JSON object, structlog's and the standard library's alike.

structlog renders its own events; everything else that logs through `logging` (uvicorn,
Strawberry, asyncpg, the Stripe SDK) reaches the root handler, whose `ProcessorFormatter`
renders it with the same processors, so one process writes one format. `LOG_FORMAT=console`
gives readable lines instead, for a developer's terminal (docs/deploy.md, "Logs").

Expected refusals (a bad token, a refused usage event, a declined card) are logged by their
code as one `info` line without a traceback; only unexpected errors carry one, with an id.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from app.config import Settings

_HANDLER_NAME = "creditline"


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `sys.stdout` as it is at each record (structlog's lines go there too, so
    the two never part ways when stdout is replaced, as a test's capture does)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _renderer(settings: Settings) -> structlog.types.Processor:
    if settings.log_format == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer()


def configure_logging(settings: Settings) -> None:
    """One format for every logger of the process; safe to call again (tests, workers)."""
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    renderer = _renderer(settings)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # What a standard record goes through before rendering: the same fields as ours,
        # the request id included, and the logger's name (uvicorn.error, strawberry...).
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            timestamper,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = _StdoutHandler()
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    handler.setFormatter(formatter)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    # httpx logs every request at info (JWKS fetches, Stripe calls): noise, not news.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # uvicorn's own handlers (when it configured logging itself) would print plain text.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
