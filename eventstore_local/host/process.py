"""`eventstore host` as a process of its own, for what must see the app as a deployment sees it (the test
suite's host, end-to-end tests that kill it, benchmarks): started on a free port with the given settings and
options, ready once it answers `GET /api/openapi.json`, stopped on exit. Its output goes to a log file that a
failure to start quotes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HostNotStarted(RuntimeError):
    """The host exited, or did not answer in time; the message ends with its log."""


class HostProcess:
    """`python -m eventstore_local host --port <free> --no-azurite --settings <absent>` plus `options`, with
    `env` over this process's environment less the variables starting with one of `leave_out` (by default its
    `EVENTSTORE_*` settings: a deployment's are what it is given). No local.settings.json is read."""

    def __init__(
        self,
        folder: Path,
        env: Mapping[str, str],
        options: Sequence[str] = (),
        *,
        port: int | None = None,
        leave_out: tuple[str, ...] = ("EVENTSTORE_",),
    ) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.log_path = folder / "host.log"
        kept = {name: value for name, value in os.environ.items() if not name.upper().startswith(leave_out)}
        self.env = {**kept, **env}
        self.command = [sys.executable, "-m", "eventstore_local", "host", "--port", str(self.port), "--no-azurite"]
        self.command += ["--settings", str(folder / "absent.json"), *options]
        self.process: subprocess.Popen[bytes] | None = None

    def log(self, last: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-last:] if self.log_path.exists() else ""

    def start(self, timeout: float = 60.0) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise HostNotStarted(f"the local host did not start:\n{self.log()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.api}/openapi.json", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: what a crash or a scale-in leaves behind."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> int | None:
        """Terminate (SIGTERM, then SIGKILL after 30 s); the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
