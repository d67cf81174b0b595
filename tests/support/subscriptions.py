"""Helpers for the websocket subscription tests: real servers and a graphql-transport-ws client.

`tests/events/test_subscriptions.py` (one in-process server, memory broker),
`tests/events/test_workers.py` (server processes sharing Redis and the database) and the
other websocket tests use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from app.config import Settings
from app.events import bus
from app.main import create_app
from tests.support import ROOT
from tests.support.api import JWT_SECRET, Api

PROTOCOL = "graphql-transport-ws"
WAIT = 20.0  # generous upper bound on any single wait; never a timing assertion
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SERVE = [sys.executable, "-m", "app", "serve"]

CREDITS = """
subscription($teamId: ID!) {
  creditsUpdated(teamId: $teamId) {
    total free promotional prepaid
    invoicedSpendingLimit invoicedThisMonth invoicedRemaining status updatedAt
    grants { id kind amount remaining expiresAt }
  }
}
"""

# Membership changes the websocket tests make (a member's subscription follows them);
# joining is `tests.support.api.join` (an invitation, accepted).
REMOVE_MEMBER = """mutation($t: ID!, $e: String!) {
  removeTeamMember(input: {teamId: $t, email: $e}) { errors { code } } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LoopbackAddresses:
    """The URLs of a server listening on 127.0.0.1:`port`."""

    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"


class LiveServer(LoopbackAddresses):
    """The app served by uvicorn in this process and event loop (memory broker)."""

    def __init__(self, settings: Settings) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings, manage_db=False),
            ws="websockets-sansio",
            # No server pings: a test's deliberately stalled client must not be dropped.
            ws_ping_interval=None,
            lifespan="on",
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    def shrink_send_buffer(self, client_port: int) -> None:
        """A small kernel send buffer for one connection: a slow network, simulated."""
        for connection in self.server.server_state.connections:
            if connection.client and connection.client[1] == client_port:  # type: ignore[attr-defined]
                sock = connection.transport.get_extra_info("socket")  # type: ignore[attr-defined]
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                return
        raise AssertionError(f"no connection from port {client_port}")

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        async with asyncio.timeout(WAIT):
            while not self.server.started:
                if self.task.done():
                    self.task.result()
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, WAIT)
        self.sock.close()


class ServerProcess(LoopbackAddresses):
    """`python -m app serve` in a subprocess (one or more uvicorn workers)."""

    def __init__(
        self,
        database_url: str,
        broker_url: str,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
        output: Path | None = None,
    ) -> None:
        """`output`: a file that gets the server's stdout and stderr (its log lines)."""
        self.port = free_port()
        self.workers = workers
        env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "AUTH_JWT_SECRET": JWT_SECRET,
            "DATABASE_POOL_SIZE": "5",
            **(extra_env or {}),
        }
        env.pop("TEST_DATABASE_URL", None)
        self._output = output.open("wb") if output else None
        self.process = subprocess.Popen(
            [*SERVE, "--port", str(self.port), "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=self._output,
            stderr=subprocess.STDOUT if output else None,
        )

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=self.http_url) as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not become healthy")
                await asyncio.sleep(0.2)
        if self.workers > 1:
            # Healthy means one worker answers; wait until every worker listens.
            while len(self.worker_pids()) < self.workers:
                if time.monotonic() > deadline:
                    raise RuntimeError("workers did not start")
                await asyncio.sleep(0.2)

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor) serving the port."""
        if self.workers == 1:
            return [self.process.pid]
        pids = []
        for child in _children(self.process.pid):
            if _listening_inode(self.port) in _socket_inodes(child):
                pids.append(child)
        return pids

    def owner_of(self, client_port: int) -> int | None:
        """The worker pid holding the server end of the connection from `client_port`."""
        inode = _connection_inode(self.port, client_port)
        if inode is None:
            return None
        for pid in self.worker_pids():
            if inode in _socket_inodes(pid):
                return pid
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self._output is not None:
            self._output.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # Fields after the parenthesised command name: state, ppid, ...
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _tcp_rows() -> list[list[str]]:
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            rows += [line.split() for line in Path(name).read_text().splitlines()[1:]]
    return rows


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _listening_inode(port: int) -> str | None:
    for row in _tcp_rows():
        if row[3] == "0A" and _port(row[1]) == port:  # 0A: LISTEN
            return row[9]
    return None


def _connection_inode(server_port: int, client_port: int) -> str | None:
    for row in _tcp_rows():
        if _port(row[1]) == server_port and _port(row[2]) == client_port and row[9] != "0":
            return row[9]
    return None


def http_api(base_url: str) -> Api:
    return Api(httpx.AsyncClient(base_url=base_url, timeout=WAIT))


class Ws:
    """One graphql-transport-ws connection, the way a balance widget uses it."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        subprotocol: str = PROTOCOL,
        origin: str | None = None,
        **kwargs: Any,
    ) -> Ws:
        conn = await websockets.connect(
            url,
            subprotocols=[subprotocol],  # type: ignore[list-item]
            origin=origin,  # type: ignore[arg-type]
            open_timeout=WAIT,
            **kwargs,
        )
        return cls(conn)

    @classmethod
    async def open(cls, url: str, token: str | None, **kwargs: Any) -> Ws:
        """Connected and acknowledged (`connection_init` with the token)."""
        ws = await cls.connect(url, **kwargs)
        await ws.init(token)
        ack = await ws.recv()
        assert ack == {"type": "connection_ack"}, ack
        return ws

    @property
    def local_port(self) -> int:
        port: int = self.conn.local_address[1]
        return port

    async def init(self, token: str | None) -> None:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await self.send({"type": "connection_init", "payload": payload})

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))

    async def recv(self, wait: float = WAIT) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.conn.recv(), wait)
            message: dict[str, Any] = json.loads(raw)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def subscribe(self, team_id: str, op: str = "1", query: str = CREDITS) -> None:
        await self.send(
            {
                "id": op,
                "type": "subscribe",
                "payload": {"query": query, "variables": {"teamId": team_id}},
            }
        )

    async def next_credits(self, op: str = "1") -> tuple[dict[str, Any], dict[str, Any]]:
        """The next balance of operation `op`: (credits, extensions)."""
        message = await self.recv()
        assert message.get("id") == op, message
        assert message["type"] == "next", message
        payload = message["payload"]
        assert not payload.get("errors"), payload
        return payload["data"]["creditsUpdated"], payload.get("extensions") or {}

    async def until_total(
        self, total: str, op: str = "1"
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Reads `op`'s balances until one shows `total`: (all seen, extensions of the last)."""
        seen = []
        while True:
            credits, extensions = await self.next_credits(op)
            seen.append(credits)
            if credits["total"] == total:
                return seen, extensions

    async def closed_with(self) -> int:
        """Waits for the server to close the socket; its close code."""
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(self.conn.recv(), WAIT)
        assert self.conn.close_code is not None
        return self.conn.close_code

    async def close(self) -> None:
        await self.conn.close()


@contextlib.asynccontextmanager
async def opened(url: str, token: str | None, **kwargs: Any) -> AsyncIterator[Ws]:
    ws = await Ws.open(url, token, **kwargs)
    try:
        yield ws
    finally:
        await ws.close()


# --- the in-process broker -----------------------------------------------------------------------


def listeners(channel: str) -> int:
    """How many subscribers this process's broker has on `channel`."""
    # The broker's backend when it has one (memory or Redis), else the broker itself.
    backend: Any = getattr(bus.broker, "backend", bus.broker)
    table = getattr(backend, "_listeners", None) or getattr(backend, "_subscribers", {})
    return len(table.get(channel, ()))


async def until_listeners(channel: str, count: int) -> None:
    """Waits until exactly `count` subscribers listen on `channel` (this process's broker)."""
    for _ in range(2000):
        if listeners(channel) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{channel} never had {count} listeners")


async def listening(channel: str) -> None:
    """Waits until somebody listens on `channel` (this process's broker)."""
    for _ in range(2000):
        if listeners(channel):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nobody subscribed to {channel}")
