"""GraphQL over HTTP conformance: graphql-http's server audit against the real app.

The app is served by uvicorn on a free loopback port in this event loop; the audit
(tools/graphql-http-audit, pinned by its package-lock.json) runs in node against it and
must pass every MUST and SHOULD item, `application/graphql-response+json` included.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from app.config import Settings
from app.main import create_app

TOOL = Path(__file__).resolve().parents[2] / "tools" / "graphql-http-audit"
WAIT = 60.0  # upper bound on start-up and on the audit; never a timing assertion


def _install_tool() -> None:
    """`npm ci` when node_modules is missing or older than the lock (npm writes
    node_modules/.package-lock.json on install)."""
    installed = TOOL / "node_modules" / ".package-lock.json"
    lock = TOOL / "package-lock.json"
    if installed.is_file() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    assert npm is not None, "npm (Node 20) is needed for the GraphQL over HTTP audit"
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=TOOL,
        check=True,
        timeout=300,
    )


@pytest.fixture
async def server_url(database: Settings) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(database, manage_db=False), lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)
        sock.close()


async def test_the_graphql_http_audit_passes_every_must_and_should(server_url: str) -> None:
    await asyncio.to_thread(_install_tool)
    node = shutil.which("node")
    assert node is not None, "node (Node 20) is needed for the GraphQL over HTTP audit"
    process = await asyncio.create_subprocess_exec(
        node,
        "audit.mjs",
        server_url,
        cwd=TOOL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(WAIT):
        output, _ = await process.communicate()
    report = output.decode()
    print(report)  # shown with -s, and on failure
    assert process.returncode == 0, report
    lines = report.splitlines()
    # Every audit ran and printed its line; none of the required levels fell short.
    assert any(line.startswith("MUST: ") and line.endswith(" 0 not passed") for line in lines)
    assert any(line.startswith("SHOULD: ") and line.endswith(" 0 not passed") for line in lines)
    assert "OK     " in report
