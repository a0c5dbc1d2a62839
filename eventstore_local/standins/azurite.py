"""Azurite (the Azure Storage emulator, from npm) for local runs and tests.

`Azurite()` starts `node_modules/.bin/azurite` (installed by `scripts/bootstrap`) on free ports, in a
temporary workspace unless one is given, and exposes a connection string for the well-known development
account. `stop()` ends its whole process group. Should this Python process die without stopping it,
Azurite still exits: it watches its stdin, a pipe from this process, and exits when the pipe closes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Self

DEVSTORE_ACCOUNT = "devstoreaccount1"
# The documented development-storage key: public, and accepted only by the emulator.
DEVSTORE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_BLOB_PORT, DEFAULT_QUEUE_PORT, DEFAULT_TABLE_PORT = 10000, 10001, 10002

_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at \S+:(\d+)")
# Preloaded into Azurite's node process: exit when stdin (a pipe from us) closes, i.e. when we are gone.
_WATCHDOG = (
    "data:text/javascript,process.stdin.on('end',()=>process.exit(0));process.stdin.on('error',()=>process.exit(0));"
    "process.stdin.resume();"
)


class AzuriteError(RuntimeError):
    """Azurite is not installed, or did not start."""


def connection_string(
    blob_port: int = DEFAULT_BLOB_PORT,
    queue_port: int = DEFAULT_QUEUE_PORT,
    table_port: int = DEFAULT_TABLE_PORT,
    host: str = "127.0.0.1",
) -> str:
    """The development account's connection string with explicit endpoints (what
    `UseDevelopmentStorage=true` means, for SDKs that do not understand that shorthand)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEVSTORE_ACCOUNT};AccountKey={DEVSTORE_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{DEVSTORE_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{DEVSTORE_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table_port}/{DEVSTORE_ACCOUNT};"
    )


def is_development_storage(value: str) -> bool:
    """Whether a connection setting is the `UseDevelopmentStorage=true` shorthand."""
    parts = {k.strip().lower(): v.strip().lower() for k, _, v in (p.partition("=") for p in value.split(";") if p)}
    return parts.get("usedevelopmentstorage") == "true"


def find_azurite(start: Path | None = None) -> Path:
    """`node_modules/.bin/azurite` of the project: searched upwards from `start` (default: this file, then
    the working directory)."""
    starts = [start] if start is not None else [Path(__file__).resolve().parent, Path.cwd()]
    for origin in starts:
        for directory in (origin, *origin.parents):
            candidate = directory / "node_modules" / ".bin" / "azurite"
            if candidate.exists():
                return candidate
    where = ", ".join(str(s) for s in starts)
    raise AzuriteError(f"Azurite is not installed (no node_modules/.bin/azurite above {where}): run scripts/bootstrap")


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Azurite:
    """One Azurite process (blob, queue and table services).

    Ports default to 0: the operating system picks free ones, read back from Azurite's start-up lines.
    `location` is Azurite's workspace; without one a temporary directory is used and removed on `stop()`
    (or nothing is written at all with `in_memory=True`).
    """

    def __init__(
        self,
        location: Path | str | None = None,
        *,
        blob_port: int = 0,
        queue_port: int = 0,
        table_port: int = 0,
        host: str = "127.0.0.1",
        in_memory: bool = False,
        executable: Path | str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.location = Path(location) if location is not None else None
        self.in_memory = in_memory
        self.startup_timeout = startup_timeout
        self._requested = {"Blob": blob_port, "Queue": queue_port, "Table": table_port}
        self._executable = Path(executable) if executable is not None else None
        self._ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._output: deque[str] = deque(maxlen=50)
        self._listening = threading.Event()
        self._temp_dir: Path | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        with self._lock:
            if self._proc is not None:
                return self
            script = (self._executable or find_azurite()).resolve()
            node = shutil.which("node")
            if node is None:
                raise AzuriteError("node is not on PATH; Azurite needs Node.js 20 (run scripts/bootstrap)")
            workspace = self._workspace()
            args = [node, "--import", _WATCHDOG, str(script)]
            for service, port in self._requested.items():
                name = service.lower()
                args += [f"--{name}Host", self.host, f"--{name}Port", str(port)]
            args += ["--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]
            args += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(workspace)]
            env = {k: v for k, v in os.environ.items() if k != "AZURITE_ACCOUNTS"}  # keep the well-known key valid
            self._listening.clear()
            self._ports = {}
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=workspace,
                env=env,
                start_new_session=True,  # its own process group: stop() ends node and anything it spawned
            )
            self._reader = threading.Thread(target=self._read_output, name="azurite-output", daemon=True)
            self._reader.start()
            atexit.register(self.stop)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                atexit.unregister(self.stop)
                if proc.stdin is not None and (self.in_memory or self._temp_dir is not None):
                    # Nothing to keep: closing its stdin makes it exit at once, where SIGTERM would wait for
                    # idle keep-alive connections to time out.
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=2)
                _end_process_group(proc)
                if proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
                if self._reader is not None:
                    self._reader.join(timeout=5)
                if proc.stdout is not None:
                    proc.stdout.close()
            if self._temp_dir is not None:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
                self._temp_dir = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: Azurite writes its metadata lazily, so blobs written in the last
        seconds are lost (docs/reliability.md). The workspace is kept for a `start()` on the same ports."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            atexit.unregister(self.stop)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            if self._reader is not None:
                self._reader.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- where it listens --------------------------------------------------------------------------------

    @property
    def blob_port(self) -> int:
        return self._port("Blob")

    @property
    def queue_port(self) -> int:
        return self._port("Queue")

    @property
    def table_port(self) -> int:
        return self._port("Table")

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.blob_port}/{DEVSTORE_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{self.host}:{self.queue_port}/{DEVSTORE_ACCOUNT}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{self.host}:{self.table_port}/{DEVSTORE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port, self.host)

    # -- internals ---------------------------------------------------------------------------------------

    def _port(self, service: str) -> int:
        if service not in self._ports:
            raise AzuriteError("Azurite is not running: call start() first")
        return self._ports[service]

    def _workspace(self) -> Path:
        if self.in_memory:
            if self.location is not None:
                raise AzuriteError("Azurite keeps nothing on disk with in_memory=True: give no location")
            return Path(tempfile.gettempdir())
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
            return self.location.resolve()
        self._temp_dir = Path(tempfile.mkdtemp(prefix="eventstore-azurite-"))
        return self._temp_dir

    def _read_output(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        with contextlib.suppress(ValueError, OSError):
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                self._output.append(line)
                match = _LISTENING.search(line)
                if match:
                    self._ports[match.group(1)] = int(match.group(2))
                    if len(self._ports) == 3:
                        self._listening.set()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        proc = self._proc
        assert proc is not None
        while not self._listening.wait(0.05):
            if proc.poll() is not None:
                if self._reader is not None:
                    self._reader.join(timeout=2)
                raise AzuriteError(f"Azurite exited with code {proc.returncode} while starting:\n{self._tail()}")
            if time.monotonic() > deadline:
                raise AzuriteError(f"Azurite did not start within {self.startup_timeout:g} s:\n{self._tail()}")
        while not all(port_open(port, self.host) for port in self._ports.values()):
            if time.monotonic() > deadline:
                raise AzuriteError(f"Azurite does not answer on {self._ports}:\n{self._tail()}")
            time.sleep(0.02)

    def _tail(self) -> str:
        return "\n".join(self._output) or "(no output)"


def _end_process_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM to the process group, SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
    else:
        # node exited; anything it left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
