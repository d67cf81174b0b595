"""/metrics of a server with two uvicorn workers: one scrape, answered by either worker,
sums the counters of both (prometheus_client's multiprocess mode, app/metrics.py)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from app import metrics
from app.config import Settings
from tests.support.metrics import sample
from tests.support.subscriptions import ServerProcess

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
METRICS = b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n"
WAIT = 60.0


class Connection:
    """One keep-alive HTTP/1.1 connection, so we know which worker holds it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.port: int = writer.get_extra_info("sockname")[1]

    async def get(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _healthz_total(conn: Connection) -> float:
    status, body = await conn.get(METRICS)
    assert status == 200
    return sample(body.decode(), "creditline_http_responses_total", {"route": "/healthz"})


async def test_one_scrape_sums_both_workers(database: Settings, tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    # A sample file left by an earlier run: `serve` starts from an empty directory.
    (shared / "counter_999999.db").write_bytes(b"stale")
    server = ServerProcess(
        database.database_url,
        "memory://",
        workers=2,
        extra_env={metrics.MULTIPROC_ENV: str(shared), "SCHEDULER": "off"},
    )
    connections: dict[int, Connection] = {}
    try:
        await server.wait_ready()
        assert not (shared / "counter_999999.db").exists()
        # New connections until both workers hold one (the kernel hands each to either).
        async with asyncio.timeout(WAIT):
            while len(connections) < 2:
                conn = Connection(*await asyncio.open_connection("127.0.0.1", server.port))
                await conn.get(HEALTHZ)  # accepted and answered: its owner is known
                owner = server.owner_of(conn.port)
                if owner is not None and owner not in connections:
                    connections[owner] = conn
                else:
                    conn.close()
        first, second = connections.values()
        before = await _healthz_total(first)
        for _ in range(7):
            assert (await first.get(HEALTHZ))[0] == 200
        for _ in range(5):
            assert (await second.get(HEALTHZ))[0] == 200
        # Either worker answers for both: 12 more, not 7 or 5.
        assert await _healthz_total(first) == before + 12
        assert await _healthz_total(second) == before + 12
        # Each worker wrote its own samples.
        pids = {int(p.stem.rsplit("_", 1)[1]) for p in shared.glob("counter_*.db")}
        assert set(connections) <= pids

        # A worker killed: its counts stay in the sum (a counter never goes back).
        dead = next(iter(connections))
        os.kill(dead, signal.SIGKILL)
        connections.pop(dead).close()
        (alive,) = connections.values()
        assert await _healthz_total(alive) >= before + 12
        # Found dead once its supervisor has reaped it (or while it is a zombie).
        for _ in range(int(WAIT * 10)):
            if dead in metrics.mark_dead_workers(str(shared)):
                break
            await asyncio.sleep(0.1)
        assert dead in metrics.mark_dead_workers(str(shared))
    finally:
        for conn in connections.values():
            conn.close()
        server.stop()
