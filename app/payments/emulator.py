"""Run the `localstripe` Stripe emulator (dev dependency) as a child process.

The stock ``localstripe`` command listens on every interface (``::``) and
pickles its whole state to ``/tmp/localstripe.pickle`` after every write.
This module starts it through a tiny ``python -c`` wrapper instead that:

* serves on a socket bound to ``127.0.0.1`` (the parent binds it, so a free
  port is race-free, and hands the file descriptor to the child);
* keeps state in memory only, or with ``state_file`` in that one file (development:
  ``data/stripe-emulator.pickle``, so customers and cards outlive a restart); never ``/tmp``;
* knows US bank accounts and ACH debits that settle after ``ach_settle_seconds``
  (`app.payments.emulator_patches`, which also holds the state file's code).

Usage::

    emu = StripeEmulator()
    emu.start()                   # free port; blocks until it answers HTTP
    emu.register_webhook("app", "http://127.0.0.1:8000/webhooks/stripe", "whsec_x")
    ...                           # StripeGateway("sk_test_x", api_base=emu.url)
    emu.stop()

or, for scripts, ``python -m app.payments.emulator --port 8420 [--webhook-url URL
--webhook-secret SECRET] [--exit-with-parent]`` (foreground; see `main`).
``localstripe`` itself is only imported in the child process.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self

HOST = "127.0.0.1"
# How long an emulated ACH debit stays `processing` unless told otherwise.
ACH_SETTLE_SECONDS_ENV = "EMULATOR_ACH_SETTLE_SECONDS"
DEFAULT_ACH_SETTLE_SECONDS = 10.0
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Runs in the child: argv[1] = inherited listening socket fd, argv[2] = "1" to log requests,
# argv[3] = the state file ("" = memory), argv[4] = ACH settlement seconds, argv[5] = the
# directory holding the `app` package.
_WRAPPER = """
import logging, socket, sys
from pathlib import Path
sys.path.insert(0, sys.argv[5])
from aiohttp import web
from app.payments.emulator_patches import install
app = install(Path(sys.argv[3]) if sys.argv[3] else None, float(sys.argv[4]))
sock = socket.socket(fileno=int(sys.argv[1]))
log = None
if sys.argv[2] == "1":
    log = logging.getLogger("aiohttp.access")
    log.setLevel(logging.DEBUG)
    log.addHandler(logging.StreamHandler())
web.run_app(app, sock=sock, access_log=log, print=None, handle_signals=True)
"""


def _set_parent_death_signal() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class EmulatorError(RuntimeError):
    """The emulator could not be started or refused a configuration call."""


def ach_settle_seconds_from_env() -> float:
    """EMULATOR_ACH_SETTLE_SECONDS (default 10): how long a bank debit stays processing."""
    raw = os.environ.get(ACH_SETTLE_SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_ACH_SETTLE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise EmulatorError(f"{ACH_SETTLE_SECONDS_ENV} must be a number of seconds") from None
    if not 0 <= value <= 86_400:
        raise EmulatorError(f"{ACH_SETTLE_SECONDS_ENV} must be between 0 and 86400")
    return value


class StripeEmulator:
    """One ``localstripe`` child process on 127.0.0.1, its state in memory or one file."""

    def __init__(
        self,
        *,
        verbose: bool = False,
        startup_timeout: float = 15.0,
        die_with_parent: bool = False,
        state_file: Path | None = None,
        ach_settle_seconds: float | None = None,
    ) -> None:
        """`verbose` lets the child log requests and webhook deliveries to our stderr.
        `die_with_parent` (Linux): the child gets SIGTERM when the thread that started it
        ends, even if this process is killed outright; for a command run from a script.
        `state_file`: keep every object there and read it back at start (None: memory).
        `ach_settle_seconds`: a bank debit's wait before it settles (None: the env's)."""
        self._state_file = state_file
        self._ach_settle_seconds = (
            ach_settle_seconds if ach_settle_seconds is not None else ach_settle_seconds_from_env()
        )
        self._verbose = verbose
        self._startup_timeout = startup_timeout
        self._die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self, port: int | None = None) -> None:
        """Start on `port` (a free one if None) and wait until it answers HTTP."""
        if self._proc is not None:
            raise EmulatorError("emulator already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, port or 0))
            sock.listen(128)
            self._port = sock.getsockname()[1]
            self._log = None if self._verbose else tempfile.TemporaryFile()  # noqa: SIM115
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _WRAPPER,
                    str(sock.fileno()),
                    "1" if self._verbose else "0",
                    str(self._state_file.resolve()) if self._state_file else "",
                    repr(self._ach_settle_seconds),
                    str(_PROJECT_ROOT),
                ],
                pass_fds=(sock.fileno(),),
                preexec_fn=_set_parent_death_signal if self._die_with_parent else None,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log if self._log is not None else None,
            )
        finally:
            sock.close()  # the child owns its inherited copy
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise EmulatorError(
                    f"localstripe exited with {self._proc.returncode}: {self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/js.stripe.com/v3/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise EmulatorError(f"localstripe not answering on {self.url}: {self._log_tail()}")
            time.sleep(0.1)

    def _log_tail(self) -> str:
        if self._log is None:
            return "(see stderr)"
        self._log.seek(0)
        return self._log.read()[-2000:].decode("utf-8", "replace")

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the child exits (or `timeout` passes: None); returns its exit code."""
        if self._proc is None:
            raise EmulatorError("emulator not started")
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> Self:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port it listens on (after `start`)."""
        if self._port is None:
            raise EmulatorError("emulator not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8420``: the SDK's api_base."""
        return f"http://{HOST}:{self.port}"

    # -- configuration -------------------------------------------------------------

    def register_webhook(
        self,
        endpoint_id: str,
        url: str,
        secret: str,
        events: Sequence[str] | None = None,
    ) -> None:
        """Register (or replace) webhook endpoint `endpoint_id`.

        localstripe POSTs every event (or only `events`) to `url`, signed with
        `secret` in a real-looking ``Stripe-Signature`` header, ~1 s after the event.
        """
        body: dict[str, object] = {"url": url, "secret": secret}
        if events is not None:
            body["events"] = list(events)
        self._config("POST", f"/_config/webhooks/{endpoint_id}", body)

    def flush(self) -> None:
        """Delete every object (customers, intents, ...); webhooks stay registered."""
        self._config("DELETE", "/_config/data", None)

    def _config(self, method: str, path: str, body: dict[str, object] | None) -> None:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            raise EmulatorError(f"{method} {path} -> {e.code}: {e.read()[:500]!r}") from e


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m app.payments.emulator [--port N] [--quiet] [--webhook-url U
    --webhook-secret S] [--state-file PATH] [--ach-settle-seconds S] [--exit-with-parent]``:
    run in the foreground until SIGTERM, Ctrl-C, or (``--exit-with-parent``) the exit of the
    process that started it."""
    parser = argparse.ArgumentParser(description="localstripe on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8420, help="0 = any free port")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    parser.add_argument("--webhook-url", help="register this endpoint for every event")
    parser.add_argument("--webhook-secret", help="the endpoint's signing secret (whsec_...)")
    parser.add_argument(
        "--state-file", type=Path, help="keep the emulator's objects in this file (default: memory)"
    )
    parser.add_argument(
        "--ach-settle-seconds",
        type=float,
        help=f"seconds a bank debit stays processing (default: ${ACH_SETTLE_SECONDS_ENV} or 10)",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started this one exits (a script's background job)",
    )
    args = parser.parse_args(argv)
    if bool(args.webhook_url) != bool(args.webhook_secret):
        parser.error("--webhook-url and --webhook-secret go together")
    parent = os.getppid()
    if args.ach_settle_seconds is not None and not 0 <= args.ach_settle_seconds <= 86_400:
        parser.error("--ach-settle-seconds must be between 0 and 86400")
    try:
        emu = StripeEmulator(
            verbose=not args.quiet,
            die_with_parent=True,
            state_file=args.state_file,
            ach_settle_seconds=args.ach_settle_seconds,
        )
    except EmulatorError as error:
        parser.error(str(error))

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        emu.start(args.port or None)
        if args.webhook_url:
            emu.register_webhook("creditline", args.webhook_url, args.webhook_secret)
        state = f"state in {args.state_file}" if args.state_file else "in-memory"
        print(f"localstripe ({state}) on {emu.url}  pid={os.getpid()}", flush=True)
        if args.webhook_url:
            print(f"  webhooks -> {args.webhook_url}", flush=True)
        while True:
            code = emu.wait(timeout=0.5)
            if code is not None:
                raise SystemExit(code)
            if args.exit_with_parent and os.getppid() != parent:
                return
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
