"""Structured logs (structlog) on top of the standard logging module."""

from __future__ import annotations

import logging

import structlog

from app.config import Environment, Settings


def configure_logging(settings: Settings) -> None:
    """JSON lines in production, readable lines elsewhere."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.environment is Environment.PRODUCTION
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
