"""Plumbing of `python -m bench.http`: the local host with its Azurite, keep-alive HTTP clients, process CPU
and py-spy profiles of the host.

The host is the project's own (`python -m eventstore_local host`), started as a subprocess on a free port with
`--no-azurite` and an Azurite of ours, exactly as tests/conftest.py does; `LocalHost.stop()` ends both
(SIGTERM, then SIGKILL after a grace period) and is safe to call more than once.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from eventstore_local.standins.azurite import Azurite

ROOT = Path(__file__).resolve().parents[1]

_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HttpClient:
    """One keep-alive HTTP/1.1 connection (`http.client`, TCP_NODELAY). A request that finds the connection
    closed by the server is sent once more on a new connection (every request of the benchmark is
    idempotent: messages carry their operationId)."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=dict(headers or {}))
                response = self.connection.getresponse()
                return response.status, response.read()
            except _RETRYABLE:
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


def process_cpu_seconds(pid: int) -> tuple[float, float] | None:
    """User and system CPU seconds of a process (Linux /proc), or None where they cannot be read."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


class LocalHost:
    """Azurite plus `python -m eventstore_local host` on a free port, serving function_app.py against `dsn`."""

    def __init__(self, dsn: str, *, pool_max_size: int = 10, startup_timeout: float = 90.0) -> None:
        self.dsn = dsn
        self.pool_max_size = pool_max_size
        self.startup_timeout = startup_timeout
        self.port = 0
        self.azurite: Azurite | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="eventstore-bench-http-"))
        self.log_path = self.folder / "host.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the host is not running")
        return self.process.pid

    def start(self) -> Self:
        try:
            self.azurite = Azurite(in_memory=True).start()
            self.port = free_port()
            env = {
                **os.environ,
                "EVENTSTORE_DATABASE_URL": self.dsn,
                "EVENTSTORE_POOL_MAX_SIZE": str(self.pool_max_size),
                "AzureWebJobsStorage": self.azurite.connection_string,
            }
            command = [
                sys.executable, "-m", "eventstore_local", "host", "--port", str(self.port), "--no-azurite",
                "--project-root", str(ROOT), "--settings", str(self.folder / "absent.json"),
            ]  # fmt: skip
            with self.log_path.open("wb") as log:
                self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the local host exited with {self.process.returncode}:\n{self.log_tail()}")
            client = HttpClient("127.0.0.1", self.port, timeout=2.0)
            try:
                status, _ = client.request("GET", "/admin/host/status")
                if status == 200:
                    return
            except OSError:
                pass
            finally:
                client.close()
            if time.monotonic() > deadline:
                waited = f"{self.startup_timeout:g} s"
                raise RuntimeError(f"the local host did not answer within {waited}:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) or "(no output)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()  # the host stops on SIGTERM: HTTP server, queue pollers, store
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        azurite, self.azurite = self.azurite, None
        if azurite is not None:
            azurite.stop()

    def cleanup(self) -> None:
        for path in (self.log_path, self.folder / "absent.json"):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- py-spy --------------------------------------------------------------------------------------------


def py_spy() -> str | None:
    """The py-spy next to this interpreter (the dev tools install it), else on PATH, else None."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "py-spy"
        if candidate.exists():
            return str(candidate)
    return None


def start_py_spy(executable: str, pid: int, seconds: float, output: Path, rate: int = 500) -> subprocess.Popen[bytes]:
    """`py-spy record --gil --nonblocking` of `pid` for `seconds`, as collapsed stacks (one line per stack and
    its sample count). Each sample is the stack of the thread holding the GIL, i.e. where the process spends
    its Python-level CPU; waits (socket, PostgreSQL, locks) and the kernel's part of system calls release
    the GIL and are not in it. Without `--gil`, py-spy's idle detection counted threads blocked in `recv`
    as busy here; without `--nonblocking`, pausing the host for every sample slowed it by a third."""
    command = [
        executable, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
        "--format", "raw", "--output", str(output), "--gil", "--nonblocking",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


_FRAME = re.compile(r"^(?P<name>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def read_stacks(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """py-spy's raw output: per stack, its frames (function, file), outermost first, and its sample count."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        text, _, count = line.rpartition(" ")
        if not text or not count.isdigit():
            continue
        frames = []
        for part in text.split(";"):
            match = _FRAME.match(part.strip())
            if match:
                frames.append((match.group("name"), match.group("file")))
            else:
                frames.append((part.strip(), ""))
        stacks.append((frames, int(count)))
    return stacks


Category = tuple[str, Sequence[str]]
"""A label and the frames that put a sample in it: `function`, or `path-fragment:function` (`*`: any function
of a file whose path contains the fragment)."""


def _matches(frame: tuple[str, str], pattern: str) -> bool:
    name, file = frame
    if ":" in pattern:
        where, _, function = pattern.rpartition(":")
        return where in file and function in {"*", name}
    return name == pattern


def summarise(stacks: list[tuple[list[tuple[str, str]], int]], categories: Sequence[Category]) -> dict[str, float]:
    """Share of samples per category. A sample goes to the first category, in the order given, that has a
    frame anywhere in its stack (so a category counts what it calls, unless an earlier category claims it);
    the shares add up to 1 with `other`."""
    total = sum(count for _, count in stacks)
    if total == 0:
        return {}
    tally: Counter[str] = Counter()
    for frames, count in stacks:
        label = next(
            (name for name, patterns in categories if any(_matches(f, p) for f in frames for p in patterns)), "other"
        )
        tally[label] += count
    return {label: tally[label] / total for label in [*(name for name, _ in categories), "other"] if tally[label]}


def top_self(stacks: list[tuple[list[tuple[str, str]], int]], limit: int = 15) -> list[tuple[str, float]]:
    """The innermost frames that take the most samples (self time), as `file:function` and share."""
    total = sum(count for _, count in stacks) or 1
    tally: Counter[str] = Counter()
    for frames, count in stacks:
        if frames:
            name, file = frames[-1]
            tally[f"{Path(file).name}:{name}"] += count
    return [(key, value / total) for key, value in tally.most_common(limit)]
