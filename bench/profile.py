"""Where the time of a workload goes: `python -m bench.profile --dsn DSN [--server-user postgres] [--cprofile KEY]`.

For the store and its raw baseline, call by call and interleaved: wall time, the client thread's CPU
time (the rest is server, network and commit wait), WAL bytes written per event and, with
`--server-user` (a database server on this machine), the CPU time of that user's processes, i.e. the
server's backends, WAL writer and checkpointer, per event. With
PGOPTIONS='-c synchronous_commit=off' in the environment the commit's fsync wait drops out, which
separates commit latency from statement execution. `--cprofile KEY` adds a cProfile of the client.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import pwd
import sys
import time
from collections.abc import Callable

import psycopg

from bench.baseline_raw import RawBench
from bench.timing import Op
from bench.workloads import StoreBench


def _wal_lsn(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(str(row[0]))


def _server_cpu(uid: int | None) -> float:
    """CPU seconds used so far by the processes of `uid` (Linux /proc); 0 without a uid."""
    if uid is None:
        return 0.0
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _ops(store: StoreBench, raw: RawBench) -> dict[str, tuple[Callable[[], Op], int]]:
    """Each workload: how to make its op, and how many calls to time."""
    return {
        "store.single": (lambda: store.append_op("profile-single", 1), 400),
        "raw.single": (lambda: raw.insert_op("profile-single", 1), 400),
        "store.batch10": (lambda: store.append_op("profile-b10", 10), 150),
        "raw.values10": (lambda: raw.insert_op("profile-b10", 10), 150),
        "store.batch100": (lambda: store.append_op("profile-b100", 100), 50),
        "raw.values100": (lambda: raw.insert_op("profile-b100", 100), 50),
        "raw.copy100": (lambda: raw.copy_op("profile-c100", 100), 50),
        "store.read_stream": (store.read_stream_op, 10),
        "raw.read_stream": (raw.read_stream_op, 10),
        "store.read_all": (store.read_all_op, 10),
        "raw.read_all": (raw.read_all_op, 10),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls-scale", type=float, default=1.0, help="multiply the calls per workload")
    parser.add_argument("--only", nargs="*", help="workload keys to run (default: all)")
    parser.add_argument("--cprofile", help="workload key to profile with cProfile (client thread CPU)")
    parser.add_argument("--server-user", help="OS user of a local database server, to count its CPU time")
    args = parser.parse_args(argv)
    uid = pwd.getpwnam(args.server_user).pw_uid if args.server_user else None

    store, raw = StoreBench(args.dsn, 10_000), RawBench(args.dsn, 10_000)
    monitor = psycopg.connect(args.dsn, autocommit=True)
    try:
        store.populate_reads()
        raw.populate_reads()
        made = {
            key: (make(), calls) for key, (make, calls) in _ops(store, raw).items() if not args.only or key in args.only
        }
        for op, _ in made.values():  # warm up: pools, prepared statements, caches
            for _ in range(6):
                op()
        totals: dict[str, list[float]] = {key: [0.0, 0.0, 0.0, 0.0, 0.0] for key in made}
        for _ in range(args.rounds):
            for key, (op, base_calls) in made.items():
                calls = max(1, int(base_calls * args.calls_scale))
                lsn = _wal_lsn(monitor)
                server = _server_cpu(uid)
                wall, cpu = time.perf_counter(), time.thread_time()
                events = 0
                for _ in range(calls):
                    events += op()
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                server = _server_cpu(uid) - server
                wal = _wal_lsn(monitor) - lsn
                total = totals[key]
                total[0] += wall
                total[1] += cpu
                total[2] += events
                total[3] += wal if key.split(".")[1].startswith(("single", "batch", "values", "copy")) else 0
                total[4] += server
        print("µs per event; rest = wall - client CPU (server, network, commit wait)")
        print(
            f"{'workload':<18} {'events/s':>9} {'wall':>8} {'client CPU':>11} {'rest':>8} {'server CPU':>11}"
            f" {'WAL B/event':>12}"
        )
        for key, (spent, used, count, wal_bytes, server_used) in totals.items():
            shown = f"{server_used / count * 1e6:>11.1f}" if uid is not None else f"{'-':>11}"
            print(
                f"{key:<18} {count / spent:>9,.0f} {spent / count * 1e6:>8.1f} {used / count * 1e6:>11.1f}"
                f" {(spent - used) / count * 1e6:>8.1f} {shown} {wal_bytes / count:>12,.0f}"
            )
        if args.cprofile:
            op, calls = made[args.cprofile]
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            for _ in range(calls):
                op()
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
            print(out.getvalue())
    finally:
        monitor.close()
        store.close()
        raw.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
