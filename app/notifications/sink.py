"""A development SMTP server on loopback that keeps each message as an `.eml` file.

`python -m app.notifications.sink --port 8025 --dir data/outbox [--exit-with-parent]`
(./scripts/serve starts one); tests start their own on a free port. aiosmtpd is a
development dependency: nothing else in the service imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class SaveToDirectory:
    """Writes every accepted message to `directory/<time>-<random>.eml` (atomically)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(  # noqa: N802 (the name aiosmtpd calls)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        partial = self.directory / f".{name}.tmp"
        partial.write_bytes(content)
        os.replace(partial, self.directory / f"{name}.eml")  # readers never see half a file
        return "250 OK"


def start(directory: Path, port: int = 0, host: str = "127.0.0.1") -> Controller:
    """A running sink; `controller.port` is where it listens (0: a free port). Stop with
    `.stop()`."""
    if port == 0:
        with socket.socket() as probe:  # aiosmtpd's start-up check needs the real port
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    controller = Controller(SaveToDirectory(directory), hostname=host, port=port)
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", default="data/outbox")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started this one exits (a script's background job)",
    )
    args = parser.parse_args(argv)
    parent = os.getppid()
    controller = start(Path(args.dir), args.port, args.host)
    print(f"smtp sink on {args.host}:{controller.port}, keeping messages in {args.dir}", flush=True)
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            if args.exit_with_parent and os.getppid() != parent:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    try:
        asyncio.run(wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
