"""A served process: one /v1/usage call is one span tree at an OTLP receiver, and every
line the process writes (its own, uvicorn's, Strawberry's) is one JSON object."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.logs import configure_logging
from tests.support.api import Actor, Api
from tests.support.billing import grant
from tests.support.ingest import event, post
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.subscriptions import ServerProcess

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
USAGE_SPANS = {
    "usage.authenticate",
    "usage.parse",
    "usage.batch_wait",
    "usage.batch",
    "usage.write",
}


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[str]:
    names = []
    while span.parent_id:
        span = by_id[span.parent_id]
        names.append(span.name)
    return names


def _log_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    # Every line, whoever wrote it, is one JSON object.
    return [json.loads(line) for line in lines]


async def _garbage(port: int) -> None:
    """A request no HTTP parser accepts: uvicorn logs a warning of its own."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()


async def test_one_usage_call_is_one_span_tree_and_every_log_line_is_json(
    database: Settings, api: Api, admin: Actor, operator: Actor, tmp_path: Path
) -> None:
    await grant(api, operator, admin.team_id, "5.00", "PREPAID")
    receiver = OtlpReceiver()
    await receiver.start()
    log_file = tmp_path / "server.log"
    server = ServerProcess(
        database.database_url,
        "memory://",
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_TRACES_SAMPLER": "always_on",
            "SCHEDULER": "off",
        },
        output=log_file,
    )
    try:
        await server.wait_ready()
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            body = event(admin.team_id, "1.25", "traced-1")
            status, answer = await post(http, "/v1/usage", body, operator.token)
            assert status == 200, answer
            unknown = event(str(uuid.uuid4()), "1.00", "refused-1")
            status, answer = await post(http, "/v1/usage", unknown, operator.token)
            assert (status, answer["error"]["code"]) == (404, "NOT_FOUND")
        await _garbage(server.port)
        spans = await receiver.until(USAGE_SPANS)
    finally:
        server.stop()
        await receiver.stop()

    # The call's spans, by the write transaction's trace id.
    write = next(s for s in spans if s.name == "usage.write")
    tree = [s for s in spans if s.trace_id == write.trace_id]
    by_id = {s.span_id: s for s in tree}
    roots = [s for s in tree if not s.parent_id]
    assert len(roots) == 1
    root = roots[0]
    assert root.kind == SERVER_KIND
    assert root.name == "POST /v1/usage"
    assert root.service == "creditline"
    # Every other span hangs off a span of the same trace: one tree.
    assert all(s.parent_id in by_id for s in tree if s is not root)
    names = {s.name for s in tree}
    assert names >= USAGE_SPANS
    named = {s.name: s for s in tree}
    assert _ancestors(named["usage.authenticate"], by_id) == [root.name]
    assert _ancestors(named["usage.parse"], by_id) == [root.name]
    assert _ancestors(named["usage.write"], by_id) == [
        "usage.batch",
        "usage.batch_wait",
        root.name,
    ]
    assert named["usage.write"].attributes["usage.events"] == 1
    if not database.is_sqlite:
        # asyncpg's spans: the statements of the write transaction, under it.
        queries = [s for s in tree if s.attributes.get("db.system") == "postgresql"]
        assert queries
        assert any("usage.write" in _ancestors(s, by_id) for s in queries)
    # The health checks before were traces of their own.
    assert {s.trace_id for s in spans if s.name == "GET /healthz"}.isdisjoint({write.trace_id})

    lines = _log_lines(log_file)
    refused = [line for line in lines if line.get("event") == "http.refused"]
    assert len(refused) == 1
    assert refused[0]["code"] == "NOT_FOUND"
    assert refused[0]["status"] == 404
    assert refused[0]["level"] == "info"
    assert "exception" not in refused[0]
    assert refused[0]["request_id"]
    uvicorn_lines = [line for line in lines if line.get("logger") == "uvicorn.error"]
    assert any("Invalid HTTP request" in line["event"] for line in uvicorn_lines), lines


def test_standard_library_records_render_as_json_lines(
    database: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(database)
    try:
        raise ValueError("unexpected")
    except ValueError:
        logging.getLogger("strawberry.execution").error("failed %s", "here", exc_info=True)
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("httpx").info("HTTP Request: GET https://id.example/jwks.json")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("strawberry.execution", "error"),
        ("uvicorn.error", "warning"),
    ]
    assert lines[0]["event"] == "failed here"
    assert "ValueError: unexpected" in lines[0]["exception"]
    assert lines[0]["timestamp"].endswith("Z")
