"""`python -m bench.reliability [--quick] [--seconds N] [--clients N] [--outage N] [--output PATH]`.

The reliability figures of docs/reliability.md, measured on private dependencies this script starts
itself (a PostgreSQL initialised in a temporary folder on a free TCP port, an Azurite on free ports) and
the project's local Functions host pointed at them; the machine's own servers are never touched:
  - throughput and latency: `POST /messages` from `--clients` keep-alive clients for `--seconds`, every
    fifth message a redelivery of an earlier one (same operationId): requests/s, p50, p99, errors;
  - time to a 503 with each dependency down: PostgreSQL stopped (connection refused), PostgreSQL hung (a
    listener on its port that accepts and never answers), Blob storage stopped and hung, for a large
    append and for a Blob-backed read;
  - requests failed after a database restart (`pg_ctl restart -m fast` under an idle host that holds
    pooled connections), over the next 20 requests;
  - time to serve again after the database returns from an `--outage`-second stop, polled every 0.1 s;
  - a lost blob after Azurite is killed right after a 5 MB append: what a read then answers.
Prints a table and writes JSON (default bench/results/reliability-latest.json). The classes here are
also what tests/http/test_outages.py uses.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from uuid import uuid4

from bench.http import Envelopes
from bench.http_client import ROOT, free_port
from eventstore_local.standins.azurite import Azurite

# --- a private PostgreSQL (the pgserver wheel's binaries) -----------------------------------------------


def _pg_bin() -> Path:
    if "XDG_RUNTIME_DIR" not in os.environ:  # as eventstore_local.standins.postgres: platformdirs wants one
        runtime = Path(tempfile.gettempdir()) / f"eventstore-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import pgserver._commands

    return Path(pgserver._commands.POSTGRES_BIN_PATH)


class PrivatePostgres:
    """A PostgreSQL of our own, in `folder`, on 127.0.0.1:`port`: stopped, started and restarted at will,
    unlike the machine's shared server. Runs as the `pgserver` system user when we are root (initdb
    refuses root), as the pgserver wheel itself does."""

    def __init__(self, folder: Path | None = None, port: int = 0) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="eventstore-outage-pg-"))
        self.data = self.folder / "data"
        self.port = port or free_port()
        self._bin = _pg_bin()
        self._user: str | None = None
        if os.geteuid() == 0:
            from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

            self._user = "pgserver"
            entry = ensure_user_exists(self._user)
            assert entry is not None
            ensure_prefix_permissions(self.folder)
            ensure_folder_permissions(self._bin, 0o055)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            timeout=timeout,
            user=self._user,
            cwd=self.folder,
        )

    def start(self) -> Self:
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "--encoding=utf8")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        """A fast shutdown, as `pg_ctlcluster ... stop`: sessions are ended (57P01) and the port closed."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.destroy()


class SilentServer:
    """Accepts TCP connections on `port` and never answers: a hung server, as far as a client can tell."""

    def __init__(self, port: int = 0) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self._socket.listen(64)
        self.port = int(self._socket.getsockname()[1])
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._socket.accept()
                self._held.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        for conn in self._held:
            conn.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


@contextlib.contextmanager
def restartable_azurite() -> Iterator[Azurite]:
    """An Azurite on fixed free ports and a folder of its own, so that it can be stopped or killed and
    started again where its clients expect it; killed and removed at the end."""
    location = Path(tempfile.mkdtemp(prefix="eventstore-outage-azurite-"))
    azurite = Azurite(location, blob_port=free_port(), queue_port=free_port(), table_port=free_port())
    try:
        yield azurite.start()
    finally:
        azurite.kill()  # nothing to keep: quicker than a graceful stop
        azurite.stop()
        shutil.rmtree(location, ignore_errors=True)


# --- the host ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer within the client's timeout (or the connection failed)
    headers: Mapping[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


class OutageHost:
    """`python -m eventstore_local host` on a free port against `dsn` and `storage`, with no Azurite, Event Grid
    stand-in or feed of its own (the outages are the dependencies', not the feed's)."""

    def __init__(self, dsn: str, storage: str, *, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="eventstore-outage-host-"))
        self.log_path = self.folder / "host.log"
        self._env = {
            **os.environ,
            "EVENTSTORE_DATABASE_URL": dsn,
            "AzureWebJobsStorage": storage,
            "EVENTSTORE_FEED_ENABLED": "false",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Self:
        command = [
            sys.executable, "-m", "eventstore_local", "host", "--port", str(self.port), "--no-azurite", "--no-engine",
            "--eventgrid-port", "-1", "--alerts-port", "-1", "--project-root", str(ROOT),
            "--settings", str(self.folder / "absent.json"),
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self.request("GET", "/admin/host/status", timeout=2).status != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local host did not start:\n{self.log_tail()}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float = 30, **headers: str
    ) -> Answer:
        """One request on a new connection; status 0 when nothing came back within `timeout`."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        start = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return Answer(
                response.status, {k.lower(): v for k, v in response.getheaders()}, data, time.perf_counter() - start
            )
        except OSError:
            return Answer(0, {}, b"", time.perf_counter() - start)
        finally:
            connection.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Api:
    """The routes the figures use, for one tenant."""

    def __init__(self, host: OutageHost, tenant_id: str | None = None) -> None:
        self.host = host
        self.tenant_id = tenant_id or uuid4().hex + uuid4().hex
        self._envelopes = Envelopes(self.tenant_id)

    def onboard(self) -> Answer:
        return self.host.request("PUT", f"/api/tenants/{self.tenant_id}", b"", timeout=60)

    def onboard_retrying(self, attempts: int = 3) -> Answer:
        """Onboarding on a fresh database can meet the host's own first use of it (a concurrent GRANT
        answers "tuple concurrently updated", a 500); onboarding is idempotent, so it is sent again."""
        answer = self.onboard()
        for _ in range(attempts - 1):
            if answer.status in (200, 201):
                break
            time.sleep(0.5)
            answer = self.onboard()
        return answer

    def envelope(self) -> bytes:
        """The sample trigger envelope for this tenant, with a fresh operationId."""
        return self._envelopes.make()[1]

    def post_message(self, body: bytes | None = None, *, timeout: float = 30) -> Answer:
        return self.host.request(
            "POST", f"/api/tenants/{self.tenant_id}/messages", body or self.envelope(), timeout=timeout,
            **{"Content-Type": "application/json"},
        )  # fmt: skip

    def append_payload(self, size: int, *, instance: str = "outage", timeout: float = 60) -> Answer:
        """One outcome event whose JSON payload is `size` bytes long (over the inline limit: a blob)."""
        payload = b'{"big": "' + b"x" * max(0, size - 11) + b'"}'
        body = b'{"eventId": "%s", "eventType": "StepCompleted", "payload": %s}' % (str(uuid4()).encode(), payload)
        return self.host.request(
            "POST", f"/api/tenants/{self.tenant_id}/instances/{instance}/events", body, timeout=timeout,
            **{"Content-Type": "application/json"},
        )  # fmt: skip

    def get_event(self, event_id: str, *, timeout: float = 60) -> Answer:
        return self.host.request("GET", f"/api/tenants/{self.tenant_id}/events/{event_id}", timeout=timeout)

    def history(self, instance: str = "outage", *, timeout: float = 30) -> Answer:
        return self.host.request("GET", f"/api/tenants/{self.tenant_id}/instances/{instance}/events", timeout=timeout)

    def health(self, *, timeout: float = 30) -> Answer:
        return self.host.request("GET", f"/api/tenants/{self.tenant_id}/health", timeout=timeout)


# --- the figures ---------------------------------------------------------------------------------------


def percentile(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(quantile * len(ordered) + 0.999999) - 1))]


def load(api: Api, seconds: float, clients: int) -> dict[str, Any]:
    """`clients` threads posting messages on keep-alive connections; every fifth a redelivery."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", api.host.port, timeout=60)
        sent: list[bytes] = []
        mine: list[float] = []
        failed: list[int] = []
        path = f"/api/tenants/{api.tenant_id}/messages"
        while time.perf_counter() < stop_at:
            body = sent[-3] if len(sent) % 5 == 4 and len(sent) >= 3 else api.envelope()
            sent.append(body)
            start = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except OSError:
                connection.close()
                status = 0
            mine.append((time.perf_counter() - start) * 1000)
            if status != 202:
                failed.append(status)
        connection.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "errors": len(errors),
    }


def _outcome(answer: Answer) -> dict[str, Any]:
    return {
        "status": answer.status,
        "seconds": round(answer.seconds, 2),
        "retry_after": answer.headers.get("retry-after"),
    }


def database_down(pg: PrivatePostgres, api: Api) -> dict[str, Any]:
    """Time to a 503 with PostgreSQL stopped (refused), then hung (a silent listener on its port)."""
    figures = {}
    pg.stop()
    try:
        figures["postgres_stopped_post"] = _outcome(api.post_message())
        figures["postgres_stopped_read"] = _outcome(api.history())
        with SilentServer(pg.port):
            figures["postgres_hung_post"] = _outcome(api.post_message())
            figures["postgres_hung_read"] = _outcome(api.history())
    finally:
        pg.start()
    return figures


def storage_down(azurite: Azurite, api: Api, event_id: str) -> dict[str, Any]:
    """Time to a 503 with Blob storage stopped (refused), then hung, for a 1 MB append and a Blob read."""
    figures = {}
    port = azurite.blob_port
    azurite.stop()
    try:
        figures["blob_stopped_append"] = _outcome(api.append_payload(1_000_000))
        figures["blob_stopped_read"] = _outcome(api.get_event(event_id))
        with SilentServer(port):
            figures["blob_hung_append"] = _outcome(api.append_payload(1_000_000))
            figures["blob_hung_read"] = _outcome(api.get_event(event_id))
    finally:
        azurite.start()
    return figures


def after_restart(pg: PrivatePostgres, api: Api, requests: int = 20) -> dict[str, Any]:
    """Fill the pool (concurrent load), restart the database with the host idle, then count failures."""
    load(api, 1.0, 10)
    pg.restart()
    statuses = [api.post_message().status for _ in range(requests)]
    return {"requests": requests, "failed": sum(1 for s in statuses if s != 202), "statuses": statuses}


def back_after_outage(pg: PrivatePostgres, api: Api, outage: float) -> dict[str, Any]:
    """Stop the database for `outage` seconds under a client polling every 0.1 s; seconds from its
    return to the first request served."""
    stop = threading.Event()
    served: list[float] = []

    def poll() -> None:
        while not stop.is_set():
            if api.history(timeout=30).status == 200 and not served:
                served.append(time.monotonic())
            time.sleep(0.1)

    api.append_payload(100)
    pg.stop()
    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(outage)
    pg.start()
    back = time.monotonic()
    deadline = back + 60
    while not served and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    poller.join()
    # pg_ctl polls for readiness, so a request can be served just before it returns: that counts as 0.
    return {"outage_seconds": outage, "seconds_to_serve": round(max(0.0, served[0] - back), 2) if served else None}


def azurite_kill(azurite: Azurite, api: Api) -> dict[str, Any]:
    """A 5 MB append acknowledged, Azurite killed at once and started again: what reads answer."""
    answer = api.append_payload(5 * 1024 * 1024, instance="killed")
    event_id = answer.json()["eventIds"][0]
    azurite.kill()
    azurite.start()
    read = api.get_event(event_id)
    health = api.health().json()
    return {
        "append_status": answer.status,
        "read_status": read.status,
        "read_problem": read.json().get("type") if read.status != 200 else None,
        "health_lists_it": any(p["eventId"] == event_id for p in health["payloadProblems"]),
    }


@contextlib.contextmanager
def environment(timeout: float | None = None) -> Iterator[tuple[PrivatePostgres, Azurite, OutageHost, Api]]:
    """A private PostgreSQL and Azurite, the host on them, and an onboarded tenant."""
    env = {"EVENTSTORE_DEPENDENCY_TIMEOUT_SECONDS": str(timeout)} if timeout else {}
    with (
        PrivatePostgres() as pg,
        restartable_azurite() as azurite,
        OutageHost(pg.dsn, azurite.connection_string, env=env) as host,
    ):
        api = Api(host)
        answer = api.onboard_retrying()
        if answer.status not in (200, 201):
            raise RuntimeError(f"onboarding answered {answer.status}: {answer.body[:500]!r}\n{host.log_tail()}")
        yield pg, azurite, host, api


def measure(seconds: float, clients: int, outage: float) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with environment() as (pg, azurite, _host, api):
        load(api, min(2.0, seconds), clients)  # warm-up: pools filled, code paths compiled
        results["load"] = load(api, seconds, clients)
        stored = api.append_payload(1_000_000)
        event_id = stored.json()["eventIds"][0]
        results["time_to_503"] = {**database_down(pg, api), **storage_down(azurite, api, event_id)}
        results["after_restart"] = after_restart(pg, api)
        results["back_after_outage"] = back_after_outage(pg, api, outage)
        results["azurite_kill"] = azurite_kill(azurite, api)
    return results


def render(results: dict[str, Any]) -> str:
    lines = []
    figure = results["load"]
    lines.append(
        f"load: {figure['clients']} clients, {figure['seconds']} s: {figure['requests_per_second']} req/s, "
        f"p50 {figure['p50_ms']} ms, p99 {figure['p99_ms']} ms, {figure['errors']} errors"
    )
    for name, outcome in results["time_to_503"].items():
        lines.append(f"{name}: {outcome['status']} after {outcome['seconds']} s (Retry-After {outcome['retry_after']})")
    restart = results["after_restart"]
    lines.append(f"after a restart: {restart['failed']} of {restart['requests']} requests failed")
    back = results["back_after_outage"]
    lines.append(
        f"after a {back['outage_seconds']:g} s stop: served again {back['seconds_to_serve']} s after its return"
    )
    killed = results["azurite_kill"]
    lines.append(
        f"Azurite killed after a 5 MB append ({killed['append_status']}): read answers {killed['read_status']} "
        f"{killed['read_problem'] or ''}; listed in health: {killed['health_lists_it']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test, not figures)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the load run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--outage", type=float, default=40.0, help="seconds the database is stopped")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "reliability-latest.json")
    args = parser.parse_args(argv)
    seconds, outage = (1.0, 3.0) if args.quick else (args.seconds, args.outage)
    results = measure(seconds, args.clients, outage)
    print(render(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
