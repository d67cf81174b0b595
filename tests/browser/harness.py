"""A real Creditline server in a subprocess, with the localstripe emulator, for browser tests.

`python -m app serve` on a free port with its own database (a temp SQLite file, or
TEST_DATABASE_URL when set), the emulator as Stripe (its webhooks registered to the server),
and the console built by the scripts. Also runnable by hand: `python -m tests.browser.harness`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from app.payments.emulator import StripeEmulator
from app.teams import tokens

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "app" / "static" / "console" / "index.html"
SCREENS = ROOT / "test-artifacts" / "screens"
JWT_SECRET = "browser-test-secret-not-for-production-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """The running server, its emulator, and helpers to mint tokens for it."""

    url: str
    process: subprocess.Popen[bytes]
    emulator: StripeEmulator
    log_path: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    def token(self, email: str, *, operator: bool = False, name: str | None = None) -> str:
        return tokens.mint(
            JWT_SECRET, subject=f"email:{email}", email=email, name=name, operator=operator
        )

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-size:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.emulator.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)  # its SQLite file and log


def start_server(database_url: str | None = None) -> Server:
    """Emulator first (the server needs its URL), then migrate and serve; waits for /healthz."""
    if not BUILD.is_file():
        raise RuntimeError(f"{BUILD} is missing: build the console (./scripts/test does it)")
    workdir = Path(tempfile.mkdtemp(prefix="creditline-browser-"))
    emulator = StripeEmulator()
    emulator.start()
    port = free_port()
    webhook_secret = "whsec_" + secrets.token_hex(16)
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url or f"sqlite://{workdir}/creditline.sqlite3",
        "AUTH_JWT_SECRET": JWT_SECRET,
        "STRIPE_API_KEY": "sk_test_browser",
        "STRIPE_API_BASE": emulator.url,
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "BROKER_URL": "memory://",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    log_path = workdir / "server.log"
    try:
        subprocess.run(
            [sys.executable, "-m", "app", "migrate"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    except BaseException:
        emulator.stop()
        raise
    server = Server(f"http://127.0.0.1:{port}", process, emulator, log_path, workdir, env)
    try:
        _wait_healthy(server)
        emulator.register_webhook("creditline", f"{server.url}/webhooks/stripe", webhook_secret)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited {server.process.returncode}: {server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy after {timeout}s: {server.log_tail()}")


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the children on SIGTERM too
    running = start_server()
    print(f"console: {running.url}/  emulator: {running.emulator.url}", flush=True)
    print(f"operator token: {running.token('operator@example.com', operator=True)}", flush=True)
    try:
        running.process.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        running.stop()
