"""`python -m bench.tenants [--tenants 1000] [--quick] [--idle-seconds 60] [--traffic-seconds 60] [--output PATH]`.

What grows with the number of tenants, measured on a private PostgreSQL this script starts itself (the
machine's shared server is never touched), with every statement logged with its duration
(`log_min_duration_statement=0`, jsonlog) so that each statement the app sends can be counted, timed and grouped:
  1. onboarding N tenants one after another through `EventStore.onboard_tenant` (owner DSN): per-tenant
     time (p50, p95, mean of the first and last 50, total), then the catalog: relations per tenant by kind,
     indexes, partitions (and what the partitions ahead bring), functions and triggers, pg_class rows,
     database size per tenant;
  2. `EventStore.migrate` across the N tenants with nothing to do (as `eventstore migrate`), then a run
     interrupted half way and the rerun after it (whether it resumes or starts over);
  3. the app's host as `eventstore host` runs it (`python -m eventstore_local host`: default schedules, the
     sample engine, the local alert receivers; Azurite and the local Event Grid stand-in as the feed's sink
     started here) on that database: from its start until the statement rate settles (the first full pass
     of every timer, the partitions run at start-up), then with NO traffic two windows of `--idle-seconds`,
     then (unless `--no-full-pass`) a window around the next full pass (`EVENTSTORE_FULL_PASS_SECONDS`, 300 s
     by default, when every timer visits every tenant anyway). Per window: transactions committed per second
     (pg_stat_database), the app's statements per second from the server log grouped by normalized text,
     new connections, the CPU of the host's process tree, of all PostgreSQL processes and of Azurite, the
     host's RSS and the server connections it holds (pg_stat_activity);
  4. traffic on `--traffic-tenants` tenants (`--rate` appends/s each through the host's HTTP API): the time
     from the append's 201 to the event's arrival at the Event Grid stand-in, p50/p95/max, with the N
     tenants, and beside it (unless `--no-baseline`) on a database holding only 1 tenant (the same per-tenant
     rate) and only the traffic tenants (the same traffic).
Prints a table; writes bench/results/tenants-latest.json. `--quick`: 100 tenants, 20 s windows, no full pass.
The machine's load average and busy CPU are recorded with each window: other work shares the cores.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import sql

from bench.facts import code_facts
from bench.http_client import HttpClient
from bench.reliability import PrivatePostgres
from eventstore import EventStore, Settings
from eventstore_local.host.process import HostProcess
from eventstore_local.standins.azurite import Azurite
from eventstore_local.standins.eventgrid import EventGridStandIn

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "tenants-latest.json"
APP_NAME = "eventstore-host"
"""The host's application_name (set in its DSN): how its sessions and statements are told apart."""
BENCH_NAME = "tenants-bench"
GRID_KEY = "bench-tenants-key"
SCHEMA_PREFIX = "es_"
CONTROL_SCHEMA = SCHEMA_PREFIX + "control"
TICK = 5.0
"""The feed's, views' and replays' default period: windows start half way between two ticks."""
FULL_PASS_SECONDS = float(Settings.model_fields["full_pass_seconds"].default)
TOP = 15
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The server's logging: every statement, connections, in JSON lines (one record per line, multi-line
# statements included), timestamps in UTC. Statement logging is switched on only while a host runs, so that
# onboarding and migration are timed without its cost.
SERVER_SETTINGS = {
    "logging_collector": "on",
    "log_destination": "jsonlog",
    "log_directory": "log",
    "log_filename": "postgresql.log",
    "log_rotation_age": "0",
    "log_rotation_size": "0",
    "log_timezone": "UTC",
    "log_line_prefix": "%m [%p] %a %u@%d ",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_statement": "none",
    "log_min_duration_statement": "-1",
    "max_connections": "200",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], quantile: float) -> float:
    """Nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def with_name(dsn: str, application_name: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={application_name}"


# --- the private server and its log ------------------------------------------------------------------------


class LoggedPostgres:
    """A `PrivatePostgres` whose log is JSON lines (`SERVER_SETTINGS`), with statement logging switched on
    and off by ALTER SYSTEM and a reload."""

    def __init__(self) -> None:
        self.server = PrivatePostgres()
        self.log_directory = self.server.data / "log"

    @property
    def port(self) -> int:
        return self.server.port

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.server.port}/{database}"

    def start(self) -> LoggedPostgres:
        self.server.start()
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            for name, value in SERVER_SETTINGS.items():
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        self.server.restart()  # logging_collector and max_connections take a restart
        return self

    def statements(self, on: bool) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            value = sql.Literal("0" if on else "-1")
            conn.execute(sql.SQL("ALTER SYSTEM SET log_min_duration_statement = {}").format(value))
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)  # sessions take the new value at their next command

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def postmaster_pid(self) -> int:
        return int((self.server.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def destroy(self) -> None:
        self.server.destroy()


@dataclass(frozen=True, slots=True)
class Record:
    at: float
    app: str
    database: str
    pid: int
    vxid: str
    kind: str  # "statement", "phase" (its parse or bind), "connect", "disconnect", "error", "other"
    text: str
    ms: float = 0.0


_SCHEMA = re.compile(r'"?' + SCHEMA_PREFIX + r'[0-9a-f]{40}"?')
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w$])-?\d+(?:\.\d+)?\b")
_SPACE = re.compile(r"\s+")
# "duration: 0.052 ms  execute <unnamed>: SELECT ..." (extended protocol: its parse and bind phases are logged
# before it, each with its own duration); "duration: 0.031 ms  statement: BEGIN" (simple protocol).
_DURATION = re.compile(r"^duration: ([0-9.]+) ms  (statement|execute|parse|bind)(?: [^:]*)?: ", re.DOTALL)


@lru_cache(maxsize=65536)
def normalized(text: str) -> str:
    """A statement's shape: tenant schemas, literals and numbers replaced, whitespace collapsed."""
    text = _SCHEMA.sub("<tenant>", text)
    text = _LITERAL.sub("?", text)
    text = _NUMBER.sub("N", text)
    return _SPACE.sub(" ", text).strip()


def _epoch(stamp: str) -> float:
    # jsonlog: "2024-05-01 12:00:00.123 UTC" (log_timezone is UTC)
    return datetime.strptime(stamp[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


class ServerLog:
    """The server's JSON log, read as it grows."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._offsets: dict[Path, int] = {}
        self.records: list[Record] = []

    def read(self) -> None:
        for path in sorted(self.directory.glob("*.json")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as file:
                file.seek(offset)
                data = file.read()
            end = data.rfind(b"\n") + 1  # only whole lines: the collector may be half way through one
            self._offsets[path] = offset + end
            for line in data[:end].splitlines():
                record = self._record(line)
                if record is not None:
                    self.records.append(record)

    @staticmethod
    def _record(line: bytes) -> Record | None:
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        message = str(entry.get("message", ""))
        severity = entry.get("error_severity", "")
        ms = 0.0
        if severity in ("ERROR", "FATAL", "PANIC"):
            kind = "error"
        elif (found := _DURATION.match(message)) is not None:
            kind = "statement" if found.group(2) in ("statement", "execute") else "phase"
            ms, message = float(found.group(1)), message[found.end() :]
        elif message.startswith("connection authorized"):
            kind = "connect"
        elif message.startswith("disconnection"):
            kind = "disconnect"
        else:
            return None  # checkpoints, autovacuum...: nothing counted here
        return Record(
            at=_epoch(str(entry.get("timestamp", "1970-01-01 00:00:00.000"))),
            app=str(entry.get("application_name", "")),
            database=str(entry.get("dbname", "")),
            pid=int(entry.get("pid", 0)),
            vxid=str(entry.get("vxid", "")),
            kind=kind,
            text=message,
            ms=ms,
        )

    def between(self, start: float, end: float) -> list[Record]:
        return [r for r in self.records if start <= r.at < end]

    def forget_before(self, moment: float) -> None:
        self.records = [r for r in self.records if r.at >= moment]


def statement_figures(
    records: list[Record], database: str, seconds: float, top: int = TOP, app: str = APP_NAME
) -> dict[str, Any]:
    """The app's statements in `records` (on `database`): per second, by shape, transactions, connections."""
    mine = [r for r in records if r.database == database and r.app == app]
    statements = [r for r in mine if r.kind == "statement"]
    shapes = Counter(normalized(r.text) for r in statements)
    server_ms: defaultdict[str, float] = defaultdict(float)
    for r in mine:
        if r.kind in ("statement", "phase"):
            server_ms[normalized(r.text)] += r.ms
    # Each statement outside BEGIN...COMMIT is a transaction of its own (autocommit); within one, they share
    # the session's virtual transaction id.
    transactions = len({(r.pid, r.vxid) for r in statements})
    others = Counter(r.app or "(none)" for r in records if r.database == database and r.kind == "statement")
    del others[app]
    connects = sum(1 for r in records if r.database == database and r.kind == "connect")
    per = max(seconds, 1e-9)
    return {
        "statements": len(statements),
        "statements_per_second": round(len(statements) / per, 2),
        "server_ms_per_second": round(sum(server_ms.values()) / per, 2),
        "transactions_from_log_per_second": round(transactions / per, 2),
        "distinct_shapes": len(shapes),
        "top": [
            {
                "per_second": round(count / per, 3),
                "count": count,
                "server_ms_per_second": round(server_ms[shape] / per, 3),
                "server_ms_per_call": round(server_ms[shape] / count, 3),
                "statement": shape[:1500],
            }
            for shape, count in shapes.most_common(top)
        ],
        "top_by_server_time": [
            {"server_ms_per_second": round(ms / per, 3), "count": shapes[shape], "statement": shape[:1500]}
            for shape, ms in sorted(server_ms.items(), key=lambda item: -item[1])[:10]
        ],
        "new_connections": connects,
        "errors": [r.text[:300] for r in mine if r.kind == "error"][:10],
        "statements_of_other_applications": dict(others),
    }


# --- processes ----------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree(root: int, children: dict[int, list[int]] | None = None) -> list[int]:
    children = children if children is not None else _children()
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, []))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes, with that of their children already waited for: summed over a
    whole tree at two moments, the difference is the tree's CPU between them, processes that ended
    included (their parent, in the tree, took their time into its cutime/cstime)."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def private_bytes(pid: int) -> int:
    """RssAnon: the process's own memory (a backend's caches), leaving out the shared buffers it touched."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def logger_pids(pids: list[int]) -> list[int]:
    found = []
    for pid in pids:
        try:
            if b"logger" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return float(sum(fields) - idle), float(sum(fields))


# --- the host ------------------------------------------------------------------------------------------------


class Host:
    """`python -m eventstore_local host` (what `eventstore host` runs) on `dsn`, with an Azurite and the Event
    Grid stand-in of ours (the host then starts no stand-in of its own: the endpoint is configured), the
    sample engine and the local alert receivers on free ports, default schedules."""

    def __init__(self, dsn: str, grid: EventGridStandIn, folder: Path, extra: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.extra = extra or {}
        self.azurite = Azurite(in_memory=True)
        self.grid = grid
        self.dsn = with_name(dsn, APP_NAME)
        self.process: HostProcess | None = None
        self.started_at = 0.0
        self.start_seconds = 0.0

    def start(self) -> Host:
        self.azurite.start()
        env = {
            "EVENTSTORE_DATABASE_URL": self.dsn,
            "AzureWebJobsStorage": self.azurite.connection_string,
            "EVENTSTORE_EVENTGRID_ENDPOINT": self.grid.endpoint,
            "EVENTSTORE_EVENTGRID_KEY": GRID_KEY,
            # `eventstore host` keeps its archive key (and embedded database) in .local/: a folder of ours.
            "EVENTSTORE_LOCAL_DIR": str(self.folder / "local"),
            **self.extra,
        }
        options = ["--crm-port", "0", "--email-port", "0", "--alerts-port", "0"]
        self.process = HostProcess(self.folder, env, options)
        self.started_at = time.time()
        self.process.start(timeout=180)
        self.start_seconds = time.time() - self.started_at
        return self

    @property
    def port(self) -> int:
        assert self.process is not None
        return self.process.port

    @property
    def pid(self) -> int:
        assert self.process is not None and self.process.process is not None
        return self.process.process.pid

    def log_problems(self) -> list[str]:
        text = self.process.log(10_000_000) if self.process is not None else ""
        return [line[:300] for line in text.splitlines() if "Traceback" in line or " ERROR " in line][:20]

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        self.azurite.stop()


# --- measuring a window --------------------------------------------------------------------------------------


@dataclass
class Probe:
    """What a window reads from the server and the processes."""

    pg: LoggedPostgres
    server_log: ServerLog
    database: str
    host: Host
    monitor: psycopg.Connection[Any] = field(init=False)

    def __post_init__(self) -> None:
        # On the `postgres` database: the probe's own transactions must not count in the app's database.
        self.monitor = psycopg.connect(with_name(self.pg.dsn(), BENCH_NAME), autocommit=True)

    def close(self) -> None:
        self.monitor.close()

    def commits(self) -> tuple[int, int]:
        row = self.monitor.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s", (self.database,)
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def connections(self) -> dict[str, int]:
        rows = self.monitor.execute(
            "SELECT coalesce(nullif(application_name, ''), backend_type) || ' ' || coalesce(usename, '') || ' '"
            " || coalesce(state, ''), count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1",
            (self.database,),
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def backend_memory(self) -> dict[str, float]:
        """The private memory of the server processes serving the app (catalog and relation caches grow with
        every tenant's relations a session touches)."""
        rows = self.monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (self.database, APP_NAME),
        ).fetchall()
        sizes = [private_bytes(int(r[0])) for r in rows]
        return {
            "backends": len(sizes),
            "total_mb": round(sum(sizes) / 1e6, 1),
            "max_mb": round(max(sizes, default=0) / 1e6, 1),
        }

    def app_connections(self) -> int:
        return sum(n for key, n in self.connections().items() if key.startswith(APP_NAME + " "))

    def cpu(self) -> dict[str, float]:
        children = _children()
        pg = tree(self.pg.postmaster_pid(), children)
        host = tree(self.host.pid, children)
        mine = set(tree(os.getpid(), children)) - set(host) - {os.getpid()}
        return {
            "host": cpu_seconds(host),
            "postgres": cpu_seconds(pg),
            "postgres_logger": cpu_seconds(logger_pids(pg)),
            "azurite": cpu_seconds(sorted(mine)),
        }

    def host_rss(self) -> int:
        return rss_bytes(tree(self.host.pid))


def aligned_start(offset: float = TICK / 2) -> float:
    """The next moment half way between two of the 5-second timers' ticks."""
    now = time.time()
    start = math.floor(now / TICK) * TICK + offset
    return start if start > now + 0.05 else start + TICK


def sleep_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 1.0))


def recent_statements(probe: Probe) -> int:
    """The app's statements over the last whole 5 seconds the log holds (the collector writes a moment late)."""
    probe.server_log.read()
    now = time.time()
    return sum(
        1
        for r in probe.server_log.between(now - TICK - 1.0, now - 1.0)
        if r.database == probe.database and r.app == APP_NAME and r.kind == "statement"
    )


def measure_window(
    probe: Probe,
    seconds: float,
    label: str,
    during: Callable[[], Any] | None = None,
    *,
    until: Callable[[], bool] | None = None,
    longest: float = 0.0,
) -> dict[str, Any]:
    """Transactions, statements, CPU, RSS and connections over `seconds` from the next half-tick (then on
    until `until()` holds, `longest` seconds at most); `during` (traffic) runs over the window when given,
    and its result is returned under `traffic`."""
    start = aligned_start()
    sleep_until(start)
    commits0, cpu0, busy0, load0 = probe.commits(), probe.cpu(), machine_busy(), os.getloadavg()[0]
    samples: list[int] = []
    outcome: list[Any] = []
    worker = None
    if during is not None:
        worker = threading.Thread(target=lambda: outcome.append(during()), name="traffic")
        worker.start()
    end = start + seconds
    while time.time() < end:
        samples.append(probe.app_connections())
        time.sleep(min(2.0, max(0.0, end - time.time())))
        if time.time() >= end and until is not None and end < start + longest and not until():
            end = min(end + TICK, start + longest)
    commits1, cpu1, busy1 = probe.commits(), probe.cpu(), machine_busy()
    end = time.time()
    elapsed = end - start
    connections = probe.connections()
    if worker is not None:
        worker.join()
    # pg_stat_database: a backend reports its counts when it goes idle, at most once a second (PG 15+);
    # the log is written by the collector a moment after the statement.
    time.sleep(1.5)
    probe.server_log.read()
    figures = statement_figures(probe.server_log.between(start, end), probe.database, elapsed)
    cores = {name: round((cpu1[name] - cpu0[name]) / elapsed, 4) for name in cpu0}
    result = {
        "label": label,
        "seconds": round(elapsed, 1),
        "transactions_committed_per_second": round((commits1[0] - commits0[0]) / elapsed, 2),
        "transactions_rolled_back_per_second": round((commits1[1] - commits0[1]) / elapsed, 2),
        **figures,
        "cpu_cores": {**cores, "host_plus_postgres": round(cores["host"] + cores["postgres"], 4)},
        "host_rss_mb": round(probe.host_rss() / 1e6, 1),
        "app_backends_private_memory": probe.backend_memory(),
        "app_connections": {"max": max(samples, default=0), "min": min(samples, default=0), "at_end": connections},
        "machine": {
            "load_average_at_start": round(load0, 2),
            "load_average_at_end": round(os.getloadavg()[0], 2),
            "busy_cores": round((busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1) * (os.cpu_count() or 1), 2),
        },
    }
    if during is not None:
        result["traffic"] = outcome[0] if outcome else None
    probe.server_log.forget_before(end)
    log(
        f"  {label}: {result['transactions_committed_per_second']} commits/s, "
        f"{figures['statements_per_second']} statements/s, host+pg {result['cpu_cores']['host_plus_postgres']} "
        f"cores, machine busy {result['machine']['busy_cores']} cores"
    )
    return result


def first_minute_after(moment: float) -> float:
    """The alerts timer's first run (default schedule: second 0 of every minute)."""
    return (math.floor(moment / 60) + 1) * 60


QUIET_WINDOWS = 14
"""5-second windows in a row the start-up must stay quiet: 70 s, so that one run of the minute's alerts timer
falls within them (a reader settles only after a second run finds it caught up: a second pass of the alerts
comes a minute after the first)."""


def settle(probe: Probe, started: float, *, maximum: float = 420.0) -> dict[str, Any]:
    """Wait until the app's statement count over 5-second windows (between ticks) has stayed at or under a
    twentieth of its peak (or 6/s) for `QUIET_WINDOWS` windows in a row, after the alerts timer's first run:
    the first runs of the timers (full passes, twice over where a reader settles only on the second) and the
    start-up partition run are over. Gives up after `maximum` seconds (`settled` false: the app never went
    quiet). Returns what the start-up cost."""
    minimum = max(30.0, first_minute_after(started) + 10 - started)
    counts: list[int] = []
    moment = aligned_start()
    while True:
        sleep_until(moment + TICK + 1.0)
        probe.server_log.read()
        window = [
            r
            for r in probe.server_log.between(moment, moment + TICK)
            if r.database == probe.database and r.app == APP_NAME and r.kind == "statement"
        ]
        counts.append(len(window))
        moment += TICK
        elapsed = moment - started
        quiet = max(30.0, 0.05 * max(counts))
        recent = counts[-QUIET_WINDOWS:]
        settled = elapsed >= minimum and len(recent) == QUIET_WINDOWS and max(recent) <= quiet
        if settled or elapsed >= maximum:
            break
    records = probe.server_log.between(started, moment)
    seconds = moment - started
    figures = statement_figures(records, probe.database, seconds)
    probe.server_log.forget_before(moment)
    state = "settled" if settled else "NOT settled"
    log(f"  start-up {state} after {seconds:.0f} s: {figures['statements']} statements")
    # What the start-up cost beyond the quiet stretch that ended it.
    busy = seconds - TICK * QUIET_WINDOWS if settled else seconds
    return {
        "seconds_to_settle": round(seconds, 1),
        "settled": settled,
        "busy_seconds": round(busy, 1),
        "statements_per_5s": counts,
        **figures,
    }


# --- traffic ---------------------------------------------------------------------------------------------------


PAYLOAD = {"stepId": "step-7", "outcome": "completed", "output": {"approved": True, "score": 0.92}}


def traffic(port: int, grid: EventGridStandIn, tenants: list[str], rate: float, seconds: float) -> dict[str, Any]:
    """`rate` single-event appends per second to each tenant (its own thread, a keep-alive connection, due on
    a schedule) for `seconds`; then the time from each 201 to the event's first arrival at the stand-in."""
    grid.clear()
    acked: dict[str, float] = {}
    append_ms: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    begin = time.time()

    def writer(tenant_id: str, offset: float) -> None:
        client = HttpClient("127.0.0.1", port, timeout=30)
        instances = [uuid4().hex for _ in range(5)]
        sent = 0
        try:
            while True:
                due = begin + offset + sent / rate
                if due >= begin + seconds:
                    return
                sleep_until(due)
                event_id = str(uuid4())
                body = json.dumps(
                    {"eventId": event_id, "eventType": "StepCompleted", "payload": PAYLOAD, "workflowId": "wf-bench"}
                ).encode()
                path = f"/api/tenants/{tenant_id}/instances/{instances[sent % 5]}/events"
                started = time.perf_counter()
                try:
                    status, _ = client.request("POST", path, body, {"Content-Type": "application/json"})
                except OSError:
                    status = 0
                done = time.time()
                with lock:
                    statuses[status] += 1
                    append_ms.append((time.perf_counter() - started) * 1000)
                    if status == 201:
                        acked[event_id] = done
                sent += 1
        finally:
            client.close()

    threads = [
        threading.Thread(target=writer, args=(t, i / (rate * len(tenants))), name=f"writer-{i}")
        for i, t in enumerate(tenants)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.time() + 20
    arrived: dict[str, float] = {}
    while time.time() < deadline:
        for accepted in grid.accepted:
            arrived.setdefault(str(accepted.event.get("id")), accepted.arrived_at)
        if all(event_id in arrived for event_id in acked):
            break
        time.sleep(0.25)
    latencies = [(arrived[e] - at) * 1000 for e, at in acked.items() if e in arrived]
    return {
        "tenants": len(tenants),
        "appends_per_second_per_tenant": rate,
        "appended": len(acked),
        "statuses": {str(k): v for k, v in statuses.items()},
        "arrived": len(latencies),
        "missing": len(acked) - len(latencies),
        "append_ms": {"p50": round(percentile(append_ms, 0.5), 1), "p95": round(percentile(append_ms, 0.95), 1)},
        "arrival_ms": {
            "p50": round(percentile(latencies, 0.5), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(max(latencies), 1) if latencies else None,
            "min": round(min(latencies), 1) if latencies else None,
        },
    }


# --- onboarding, catalog, migration ------------------------------------------------------------------------------


def new_tenant_id() -> str:
    return uuid4().hex + uuid4().hex  # a Marain client tenant id: 64 lowercase hex


def onboard(dsn: str, count: int, what: str) -> tuple[list[str], dict[str, Any]]:
    """`count` tenants onboarded one after another through `EventStore.onboard_tenant`, each timed."""
    ids = [new_tenant_id() for _ in range(count)]
    seconds: list[float] = []
    with EventStore(Settings(database_url=with_name(dsn, BENCH_NAME))) as store:
        started = time.perf_counter()
        store.registry  # noqa: B018 (the control schema and roles first: not part of the first tenant's time)
        control = time.perf_counter() - started
        for index, tenant_id in enumerate(ids, 1):
            began = time.perf_counter()
            store.onboard_tenant(tenant_id)
            seconds.append(time.perf_counter() - began)
            if index % 100 == 0 or index == count:
                log(f"  {what}: {index}/{count} onboarded, last {seconds[-1] * 1000:.0f} ms")
        with psycopg.connect(with_name(dsn, BENCH_NAME + "-probe"), autocommit=True) as conn:
            pids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
                    (BENCH_NAME,),
                )
            ]
        # The owner's pooled sessions did every onboarding: their caches hold every tenant's relations.
        owner_memory = max((private_bytes(pid) for pid in pids), default=0)
    ms = [s * 1000 for s in seconds]
    head, tail = ms[:50], ms[-50:]
    return ids, {
        "tenants": count,
        "control_schema_ms": round(control * 1000, 1),
        "owner_backend_private_mb": round(owner_memory / 1e6, 1),
        "total_seconds": round(sum(seconds), 1),
        "p50_ms": round(percentile(ms, 0.5), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "max_ms": round(max(ms), 1),
        "mean_first_50_ms": round(statistics.fmean(head), 1),
        "mean_last_50_ms": round(statistics.fmean(tail), 1),
        "mean_per_decile_ms": [
            round(statistics.fmean(ms[i * count // 10 : (i + 1) * count // 10]), 1) for i in range(10)
        ]
        if count >= 10
        else None,
    }


def _one(conn: psycopg.Connection[Any], statement: str, *params: Any) -> Any:
    row = conn.execute(statement, params).fetchone()
    assert row is not None
    return row[0]


# The relations of tenant schemas (not the control schema), with their TOAST tables and TOAST indexes, which
# live in pg_toast.
_TENANT_RELATIONS = """
WITH own AS (
    SELECT c.oid, c.relkind, c.relispartition, c.reltoastrelid, n.nspname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname LIKE %(pattern)s AND n.nspname <> %(control)s
), toast AS (
    SELECT t.oid FROM pg_class t JOIN own ON own.reltoastrelid = t.oid
), toast_index AS (
    SELECT i.indexrelid AS oid FROM pg_index i JOIN toast ON toast.oid = i.indrelid
)
"""


def catalog(dsn: str, tenants: int, size_before: int) -> dict[str, Any]:
    """Catalog figures of the N tenants' schemas."""
    params = {"pattern": SCHEMA_PREFIX.replace("_", r"\_") + "%", "control": CONTROL_SCHEMA}
    with psycopg.connect(with_name(dsn, BENCH_NAME), autocommit=True) as conn:
        kinds: dict[str, int] = {
            str(r[0]): int(r[1])
            for r in conn.execute(_TENANT_RELATIONS + "SELECT relkind, count(*) FROM own GROUP BY 1", params)
        }
        toast = conn.execute(_TENANT_RELATIONS + "SELECT count(*) FROM toast", params).fetchone()
        toast_indexes = conn.execute(_TENANT_RELATIONS + "SELECT count(*) FROM toast_index", params).fetchone()
        partition_relations = conn.execute(
            _TENANT_RELATIONS
            + """, parts AS (SELECT oid, reltoastrelid FROM own WHERE relispartition AND relkind IN ('r', 'p'))
            SELECT (SELECT count(*) FROM parts),
                   (SELECT count(*) FROM pg_index i JOIN parts ON parts.oid = i.indrelid),
                   (SELECT count(*) FROM parts WHERE reltoastrelid <> 0),
                   (SELECT count(*) FROM pg_index i JOIN parts ON parts.reltoastrelid = i.indrelid)""",
            params,
        ).fetchone()
        functions = _one(
            conn,
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname LIKE %s AND n.nspname <> %s",
            params["pattern"],
            CONTROL_SCHEMA,
        )
        triggers = _one(
            conn,
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE %s AND n.nspname <> %s",
            params["pattern"],
            CONTROL_SCHEMA,
        )
        types = _one(
            conn,
            "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE n.nspname LIKE %s AND n.nspname <> %s",
            params["pattern"],
            CONTROL_SCHEMA,
        )
        sample = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s AND nspname <> %s ORDER BY oid LIMIT 1",
            (params["pattern"], CONTROL_SCHEMA),
        ).fetchone()
        listing: list[list[Any]] = []
        if sample is not None:
            listing = [
                [str(r[0]), str(r[1]), bool(r[2])]
                for r in conn.execute(
                    "SELECT c.relname, c.relkind, c.relispartition FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s ORDER BY c.relkind, c.relname",
                    (sample[0],),
                ).fetchall()
            ]
        counts = {
            name: _one(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pg_catalog", name)).as_string())
            for name in ("pg_class", "pg_attribute", "pg_depend", "pg_type", "pg_index", "pg_constraint", "pg_proc")
        }
        catalog_bytes = _one(
            conn,
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'pg_catalog' AND c.relkind = 'r'",
        )
        size = _one(conn, "SELECT pg_database_size(current_database())")
        tenant_bytes = conn.execute(
            _TENANT_RELATIONS
            + "SELECT coalesce(sum(pg_relation_size(oid)), 0) FROM (SELECT oid FROM own UNION ALL SELECT oid FROM toast"
            " UNION ALL SELECT oid FROM toast_index) AS x",
            params,
        ).fetchone()
    n = max(tenants, 1)
    own = sum(kinds.values())
    toasts = int(toast[0]) if toast else 0
    toast_idx = int(toast_indexes[0]) if toast_indexes else 0
    parts = [int(x) for x in partition_relations] if partition_relations else [0, 0, 0, 0]
    names = {
        "r": "tables", "p": "partitioned_tables", "i": "indexes", "I": "partitioned_indexes", "S": "sequences",
        "v": "views", "m": "materialized_views", "c": "composite_types", "t": "toast", "f": "foreign",
    }  # fmt: skip
    return {
        "tenants": tenants,
        "relations_per_tenant_in_schema": round(own / n, 2),
        "relations_per_tenant_with_toast": round((own + toasts + toast_idx) / n, 2),
        "per_tenant_by_kind": {names.get(str(k), str(k)): round(int(v) / n, 2) for k, v in sorted(kinds.items())},
        "toast_tables_per_tenant": round(toasts / n, 2),
        "toast_indexes_per_tenant": round(toast_idx / n, 2),
        "partitions_per_tenant": round(parts[0] / n, 2),
        "relations_from_partitions_per_tenant": round(sum(parts) / n, 2),
        "relations_per_partition": round(sum(parts) / parts[0], 2) if parts[0] else None,
        "functions_per_tenant": round(int(functions) / n, 2),
        "triggers_per_tenant": round(int(triggers) / n, 2),
        "types_per_tenant": round(int(types) / n, 2),
        "catalog_rows": {k: int(v) for k, v in counts.items()},
        "pg_catalog_bytes": int(catalog_bytes),
        "database_bytes": int(size),
        "database_bytes_per_tenant": round((int(size) - size_before) / n),
        "tenant_relation_bytes_per_tenant": round(int(tenant_bytes[0]) / n) if tenant_bytes else None,
        "sample_schema": listing,
    }


def onboarding_statements(pg: LoggedPostgres, dsn: str, database: str, server_log: ServerLog) -> dict[str, Any]:
    """One more tenant onboarded with every statement logged: what one onboarding sends, by shape."""
    pg.statements(True)
    try:
        started = time.time()
        with EventStore(Settings(database_url=with_name(dsn, BENCH_NAME))) as store:
            store.registry  # noqa: B018 (the control schema's check, outside the onboarding)
            began = time.perf_counter()
            store.onboard_tenant(new_tenant_id())
            seconds = time.perf_counter() - began
        time.sleep(1.5)
        server_log.read()
        records = server_log.between(started, time.time())
    finally:
        pg.statements(False)
    figures = statement_figures(records, database, 1.0, top=25, app=BENCH_NAME)
    return {
        "ms": round(seconds * 1000, 1),
        "statements": figures["statements"],
        "transactions": figures["transactions_from_log_per_second"],
        "server_ms": figures["server_ms_per_second"],
        "by_server_time": [
            {"server_ms": t["server_ms_per_second"], "count": t["count"], "statement": t["statement"]}
            for t in figures["top_by_server_time"]
        ],
    }


class Interrupted(Exception):
    """Raised from the progress callback: a migration stopped half way, as by Ctrl-C or a lost connection."""


def _migrate_once(dsn: str, stop_at: int | None = None, **options: Any) -> dict[str, Any]:
    """One `EventStore.migrate` in an EventStore of its own (each `eventstore migrate` is a process of its
    own), stopped after `stop_at` tenants when given."""
    stamps: list[float] = []

    due: list[int] = []

    def progress(index: int, total: int, placement: Any, version: int) -> None:
        stamps.append(time.perf_counter())
        due[:] = [total]
        if index % 250 == 0:
            log(f"  migrate: {index}/{total}")
        if stop_at is not None and index >= stop_at:
            raise Interrupted

    started = time.perf_counter()
    interrupted = False
    with EventStore(Settings(database_url=with_name(dsn, BENCH_NAME))) as store:
        try:
            store.migrate(progress, **options)
        except Interrupted:
            interrupted = True
    seconds = time.perf_counter() - started
    gaps = [(b - a) * 1000 for a, b in zip([started, *stamps], stamps, strict=False)]
    return {
        "seconds": round(seconds, 2),
        "tenants_visited": len(stamps),
        "tenants_due": due[0] if due else 0,
        "interrupted": interrupted,
        "per_tenant_p50_ms": round(percentile(gaps[1:], 0.5), 2) if len(gaps) > 1 else None,
        "per_tenant_p95_ms": round(percentile(gaps[1:], 0.95), 2) if len(gaps) > 1 else None,
    }


def migrate_runs(dsn: str, tenants: int) -> dict[str, Any]:
    """`EventStore.migrate` with nothing to do; the walk over every tenant (`every=True`, where migrate has
    it); then, with every tenant's registered version set back to 0 (as after a release that adds a
    migration: each tenant is due), a run interrupted half way and the rerun after it."""
    results: dict[str, Any] = {}
    log("migrate: nothing to do")
    results["nothing_to_do"] = _migrate_once(dsn)
    log(f"  {results['nothing_to_do']['seconds']} s, {results['nothing_to_do']['tenants_visited']} tenant(s) visited")
    if "every" in inspect.signature(EventStore.migrate).parameters:
        log("migrate: every tenant (every=True)")
        results["every_tenant"] = _migrate_once(dsn, every=True)
        log(f"  {results['every_tenant']['seconds']} s")
    log("migrate: every tenant due (registered version 0), interrupted half way, then run again")
    with psycopg.connect(with_name(dsn, BENCH_NAME), autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("UPDATE {} SET schema_version = 0").format(sql.Identifier(CONTROL_SCHEMA, "tenants")))
        except psycopg.errors.UndefinedColumn:
            results["note"] = "the registry records no schema version: nothing to set back"
    results["interrupted_half_way"] = _migrate_once(dsn, max(1, tenants // 2))
    results["rerun_after_interruption"] = _migrate_once(dsn)
    rerun = results["rerun_after_interruption"]["tenants_visited"]
    done = results["interrupted_half_way"]["tenants_visited"]
    results["rerun_resumes"] = rerun <= results["interrupted_half_way"]["tenants_due"] - done
    log(f"  interrupted after {done}; the rerun visited {rerun} in {results['rerun_after_interruption']['seconds']} s")
    return results


# --- a host's phases ------------------------------------------------------------------------------------------


@contextmanager
def running_host(
    pg: LoggedPostgres,
    database: str,
    grid: EventGridStandIn,
    folder: Path,
    server_log: ServerLog,
    full_pass_seconds: float,
) -> Iterator[tuple[Host, Probe]]:
    pg.statements(True)
    every = f"{full_pass_seconds:g}"
    extra = {"EVENTSTORE_FULL_PASS_SECONDS": every} if full_pass_seconds != FULL_PASS_SECONDS else {}
    host = Host(pg.dsn(database), grid, folder, extra)
    probe: Probe | None = None
    try:
        log(f"host on {database}: starting")
        host.start()
        probe = Probe(pg, server_log, database, host)
        yield host, probe
    finally:
        if probe is not None:
            probe.close()
        host.stop()
        pg.statements(False)


def host_phases(
    pg: LoggedPostgres,
    database: str,
    grid: EventGridStandIn,
    folder: Path,
    server_log: ServerLog,
    traffic_tenants: list[str],
    args: argparse.Namespace,
    *,
    idle_windows: int,
    full_pass: bool,
) -> dict[str, Any]:
    # The code the host ran: it is read when the host starts, and the tree may change during a long run.
    result: dict[str, Any] = {"database": database, "code_at_host_start": code_facts()}
    with running_host(pg, database, grid, folder, server_log, args.full_pass_seconds) as (host, probe):
        result["host_start_seconds"] = round(host.start_seconds, 1)
        result["startup"] = settle(probe, host.started_at)
        result["idle"] = [measure_window(probe, args.idle_seconds, f"idle {i + 1}") for i in range(idle_windows)]
        if full_pass:
            # Every reader's clock starts at its first run: the first tick after start (feed, views, replays),
            # the first whole minute (alerts). A run is a full pass once `full_pass_seconds` have gone by
            # since the last, so the alerts' comes at the first minute + 300 s or, should that tick come a
            # hair early, a minute later. The window takes them all, and lasts until the app is quiet again.
            steady = min(w["statements_per_second"] for w in result["idle"])
            every = args.full_pass_seconds
            begin = host.started_at + every - 2 * TICK
            shortest = max(first_minute_after(host.started_at) + every + 65 - begin, 2 * TICK)
            sleep_until(begin)
            window = measure_window(
                probe,
                shortest,
                "around the full pass",
                until=lambda: recent_statements(probe) <= max(30.0, 3 * steady * TICK),
                longest=shortest + 300,
            )
            extra = window["statements"] - steady * window["seconds"]
            window["full_pass_extra_statements"] = round(extra)
            window["full_pass_amortized_statements_per_second"] = round(extra / every, 2)
            result["full_pass"] = window
        tenants = traffic_tenants[: args.traffic_tenants]
        result["traffic"] = measure_window(
            probe,
            args.traffic_seconds,
            f"traffic on {len(tenants)} tenant(s)",
            lambda: traffic(host.port, grid, tenants, args.rate, args.traffic_seconds - 2),
        )
        result["host_log_problems"] = host.log_problems()
    return result


# --- the run ------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="eventstore-bench-tenants-"))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.tenants", *sys.argv[1:]]),
        "tenants": args.tenants,
        "quick": args.quick,
        "idle_seconds": args.idle_seconds,
        "traffic_seconds": args.traffic_seconds,
        "traffic": {"tenants": args.traffic_tenants, "appends_per_second_per_tenant": args.rate},
        "full_pass_seconds": args.full_pass_seconds,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        **code_facts(),
    }
    pg = LoggedPostgres()
    grid = EventGridStandIn(key=GRID_KEY, port=0)
    try:
        pg.start()
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            results["server"] = {
                name: _one(conn, sql.SQL("SHOW {}").format(sql.Identifier(name)).as_string())
                for name in ("server_version", "shared_buffers", "synchronous_commit", "fsync", "max_connections")
            }
        grid.start()
        server_log = ServerLog(pg.log_directory)
        database = "tenants_main"
        dsn = pg.create_database(database)
        with EventStore(Settings(database_url=with_name(dsn, BENCH_NAME))) as store:
            store.registry  # noqa: B018 (the control schema, so that the size before counts it)
        with psycopg.connect(dsn, autocommit=True) as conn:
            size_before = int(_one(conn, "SELECT pg_database_size(current_database())"))
        log(f"onboarding {args.tenants} tenants in {database}")
        ids, results["onboarding"] = onboard(dsn, args.tenants, "main")
        results["catalog"] = catalog(dsn, args.tenants, size_before)
        results["migrate"] = migrate_runs(dsn, args.tenants)
        # The small databases' hosts run now, next to the main one: their traffic figures then share the
        # machine's conditions of the moment (other work on the same cores) as far as can be.
        baselines: dict[str, Any] = {}
        if not args.no_baseline:
            for count in sorted({1, args.traffic_tenants}):
                database = f"tenants_{count}"
                dsn = pg.create_database(database)
                log(f"baseline: {count} tenant(s) in {database}")
                small_ids, onboarding = onboard(dsn, count, database)
                phases = host_phases(
                    pg, database, grid, folder / database, server_log, small_ids, args, idle_windows=1, full_pass=False
                )
                baselines[str(count)] = {"onboarding": onboarding, **phases}
        database, dsn = "tenants_main", pg.dsn("tenants_main")
        results["baselines"] = baselines
        results["main"] = host_phases(
            pg,
            database,
            grid,
            folder / database,
            server_log,
            ids,
            args,
            idle_windows=2,
            full_pass=not args.no_full_pass,
        )
        results["onboarding_statements"] = onboarding_statements(pg, dsn, database, server_log)
    finally:
        grid.stop()
        if args.keep:
            log(f"kept the server's folder {pg.server.folder} (port {pg.port}, stopped)")
            pg.server.stop()
        else:
            pg.destroy()
        shutil.rmtree(folder, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    return results


# --- the report ------------------------------------------------------------------------------------------------


def _row(label: str, *values: Any) -> str:
    return f"  {label:<58}" + "".join(f"{v!s:>16}" for v in values)


def _statement_line(entry: dict[str, Any]) -> str:
    ms = entry.get("server_ms_per_second", 0.0)
    return f"    {entry['per_second']:>8.2f} {ms:>8.2f}  {entry['statement'][:140]}"


def render(results: dict[str, Any]) -> str:
    lines = [f"tenants bench: {results['tenants']} tenants ({results['command']})"]
    o = results.get("onboarding")
    if o:
        lines += [
            "onboarding (EventStore.onboard_tenant, one after another)",
            _row("total", f"{o['total_seconds']} s"),
            _row("p50 / p95 / max per tenant", f"{o['p50_ms']} ms", f"{o['p95_ms']} ms", f"{o['max_ms']} ms"),
            _row("mean of the first 50 / the last 50", f"{o['mean_first_50_ms']} ms", f"{o['mean_last_50_ms']} ms"),
            _row("the owner's server session, private memory after", f"{o.get('owner_backend_private_mb')} MB"),
        ]
        if o.get("mean_per_decile_ms"):
            lines.append(_row("mean per tenth (ms)", " ".join(f"{x:.0f}" for x in o["mean_per_decile_ms"])))
    st = results.get("onboarding_statements")
    if st:
        lines.append(_row("one more onboarding, logged: ms / statements / server ms", st["ms"],
                          st["statements"], st["server_ms"]))  # fmt: skip
        lines += [f"    {t['server_ms']:>9.1f} ms  {t['statement'][:130]}" for t in st["by_server_time"][:6]]
    c = results.get("catalog")
    if c:
        kinds = ", ".join(f"{k} {v:g}" for k, v in c["per_tenant_by_kind"].items())
        lines += [
            "catalog per tenant",
            _row("relations in the schema", c["relations_per_tenant_in_schema"]),
            _row("  by kind", kinds),
            _row("  + TOAST tables and their indexes (pg_toast)", c["relations_per_tenant_with_toast"]),
            _row(
                "partitions / relations they bring / per partition",
                c["partitions_per_tenant"],
                c["relations_from_partitions_per_tenant"],
                c["relations_per_partition"],
            ),
            _row(
                "functions / triggers / types",
                c["functions_per_tenant"],
                c["triggers_per_tenant"],
                c["types_per_tenant"],
            ),
            _row(
                "database bytes per tenant / of which relation pages",
                c["database_bytes_per_tenant"],
                c["tenant_relation_bytes_per_tenant"],
            ),
            _row(
                "pg_class rows / pg_attribute / pg_depend",
                c["catalog_rows"]["pg_class"],
                c["catalog_rows"]["pg_attribute"],
                c["catalog_rows"]["pg_depend"],
            ),
            _row("pg_catalog size", f"{c['pg_catalog_bytes'] / 1e6:.1f} MB"),
        ]
    m = results.get("migrate")
    if m:
        lines.append("eventstore migrate (EventStore.migrate)")
        for key, label in (
            ("nothing_to_do", "nothing to do"),
            ("every_tenant", "every tenant (every=True)"),
            ("interrupted_half_way", "every tenant due, interrupted half way"),
            ("rerun_after_interruption", "the rerun after the interruption"),
        ):
            if key in m:
                one = m[key]
                lines.append(
                    _row(
                        f"{label}: tenants / seconds / p50 per tenant",
                        one["tenants_visited"],
                        f"{one['seconds']} s",
                        f"{one['per_tenant_p50_ms']} ms",
                    )
                )
        lines.append(_row("the rerun resumes (visits only what is left)", m["rerun_resumes"]))
    runs = [(f"N={k}", v) for k, v in results.get("baselines", {}).items()]
    if results.get("main"):
        runs.append((f"N={results['tenants']}", results["main"]))
    for name, r in runs:
        s = r["startup"]
        lines += [
            f"host, {name} ({r['database']}); started in {r['host_start_seconds']} s",
            _row(
                "start-up: busy seconds / statements / settled",
                s.get("busy_seconds", s["seconds_to_settle"]),
                s["statements"],
                s.get("settled", "-"),
            ),
        ]
        windows = [*r["idle"], *([r["full_pass"]] if "full_pass" in r else []), r["traffic"]]
        lines.append(_row("window", *(w["label"][:15] for w in windows)))
        for label, get in (
            ("transactions committed /s (pg_stat_database)", lambda w: w["transactions_committed_per_second"]),
            ("app statements /s (log)", lambda w: w["statements_per_second"]),
            ("  their server time, ms /s (log)", lambda w: w.get("server_ms_per_second", "-")),
            ("app transactions /s (log)", lambda w: w["transactions_from_log_per_second"]),
            ("new connections in the window", lambda w: w["new_connections"]),
            ("CPU host (cores)", lambda w: w["cpu_cores"]["host"]),
            ("CPU PostgreSQL (cores, logger included)", lambda w: w["cpu_cores"]["postgres"]),
            ("  of which the log collector", lambda w: w["cpu_cores"]["postgres_logger"]),
            ("CPU Azurite (cores)", lambda w: w["cpu_cores"]["azurite"]),
            ("host RSS (MB)", lambda w: w["host_rss_mb"]),
            ("app connections max", lambda w: w["app_connections"]["max"]),
            (
                "app backends' private memory total/max (MB)",
                lambda w: "{total_mb}/{max_mb}".format(
                    **w.get("app_backends_private_memory", {"total_mb": "-", "max_mb": "-"})
                ),
            ),
            (
                "machine busy cores / load",
                lambda w: f"{w['machine']['busy_cores']}/{w['machine']['load_average_at_end']}",
            ),
        ):
            lines.append(_row(label, *(get(w) for w in windows)))
        t = r["traffic"]["traffic"]
        if t:
            lines.append(
                _row(
                    f"traffic: {t['tenants']} x {t['appends_per_second_per_tenant']:g}/s; arrival p50/p95/max ms",
                    t["arrival_ms"]["p50"],
                    t["arrival_ms"]["p95"],
                    t["arrival_ms"]["max"],
                )
            )
            lines.append(
                _row("  appended / arrived / append p50 ms", t["appended"], t["arrived"], t["append_ms"]["p50"])
            )
        if "full_pass" in r:
            f = r["full_pass"]
            lines.append(
                _row(
                    "full pass: extra statements / amortized per s",
                    f["full_pass_extra_statements"],
                    f["full_pass_amortized_statements_per_second"],
                )
            )
        lines.append(f"  top statements of the app, idle ({r['idle'][-1]['label']}): per second, server ms per second")
        lines += [_statement_line(t) for t in r["idle"][-1]["top"]]
        if "full_pass" in r:
            lines.append("  top statements around the full pass: per second, server ms per second")
            lines += [_statement_line(t) for t in r["full_pass"]["top"][:10]]
        lines.append("  top statements at start-up (count):")
        lines += [f"    {t['count']:>8}  {t['statement'][:150]}" for t in s["top"][:10]]
        if r.get("host_log_problems"):
            lines.append(f"  host log problems: {r['host_log_problems'][:3]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tenants", description=__doc__.split("\n\n")[1])
    parser.add_argument("--tenants", type=int, help="tenants onboarded (default 1000; quick 100)")
    parser.add_argument("--quick", action="store_true", help="100 tenants, 20 s windows, no full-pass window")
    parser.add_argument("--idle-seconds", type=float, help="length of each idle window (default 60; quick 20)")
    parser.add_argument("--traffic-seconds", type=float, help="length of the traffic window (default 60; quick 20)")
    parser.add_argument("--traffic-tenants", type=int, default=10, help="tenants that get traffic (default 10)")
    parser.add_argument("--rate", type=float, default=3.0, help="appends per second per traffic tenant (default 3)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the 1-tenant and 10-tenant databases")
    parser.add_argument("--no-full-pass", action="store_true", help="skip the window around the next full pass")
    parser.add_argument(
        "--full-pass-seconds",
        type=float,
        default=FULL_PASS_SECONDS,
        help=f"the host's EVENTSTORE_FULL_PASS_SECONDS (default: not set, {FULL_PASS_SECONDS:g})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the private server's folder (and its log)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    args.tenants = args.tenants or (100 if args.quick else 1000)
    args.idle_seconds = args.idle_seconds or (20.0 if args.quick else 60.0)
    args.traffic_seconds = args.traffic_seconds or (20.0 if args.quick else 60.0)
    args.no_full_pass = args.no_full_pass or args.quick
    if args.tenants < args.traffic_tenants or args.traffic_tenants < 1 or args.rate <= 0:
        raise SystemExit("--tenants must be >= --traffic-tenants >= 1 and --rate > 0")
    started = time.perf_counter()
    results = run(args)
    results["duration_seconds"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, default=str))
    print(render(results))
    print(f"\nresults written to {args.output} ({results['duration_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
