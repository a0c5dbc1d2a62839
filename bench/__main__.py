"""`python -m bench [--dsn DSN] [--quick] [--seconds N] [--rounds N]`.

Measures the store's appends and reads next to a raw psycopg table and eventsourcing 9.5.6, all on the
same database in the same run. Each group of comparable measurements runs back to back, in a rotating
order, for several rounds; figures are medians and ratios are medians of the per-round ratios, because
commit latency drifts within a run. Prints the figures and targets; writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.baseline_eventsourcing import EventSourcingBench
from bench.baseline_raw import RawBench
from bench.facts import code_facts, server_facts
from bench.payloads import PAYLOAD_SIZE
from bench.report import Figure, ratios, render, write_json
from bench.suite import Case, build
from bench.workloads import StoreBench

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
DSN_VARIABLE = "EVENTSTORE_BENCH_DATABASE_URL"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${DSN_VARIABLE}, else an embedded server)")
    parser.add_argument("--quick", action="store_true", help="tiny counts and durations: a smoke test")
    parser.add_argument("--seconds", type=float, help="duration of each measurement (default 2, quick 0.1)")
    parser.add_argument("--rounds", type=int, help="rounds of every measurement (default 5, quick 2)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the baselines' schemas after the run")
    return parser.parse_args(argv)


def _run_rounds(groups: list[list[Case]], rounds: int, seconds: float, warmup: float) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    for group in groups:
        for case in group:
            figures[case.key] = Figure(case.key, case.label, [])
            if warmup > 0:
                case.measure(warmup)
    for number in range(rounds):
        print(f"round {number + 1}/{rounds}", file=sys.stderr, flush=True)
        for group in groups:
            # Rotate who goes first, so no contender always gets the same place in the drift.
            shift = number % len(group)
            for case in group[shift:] + group[:shift]:
                rate = case.measure(seconds)
                figures[case.key].rounds.append(rate)
                print(f"  {case.label:<58} {rate:>10,.0f}/s", file=sys.stderr, flush=True)
    return figures


def run(dsn: str, *, quick: bool, seconds: float, rounds: int, output: Path, keep: bool) -> int:
    started = time.perf_counter()
    read_events = 500 if quick else 10_000
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "quick": quick,
        "seconds": seconds,
        "rounds": rounds,
        "read_events": read_events,
        "payload_bytes": PAYLOAD_SIZE,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "load_average_at_start": os.getloadavg()[0],
        **code_facts(),
        **server_facts(dsn),
    }
    store = StoreBench(dsn, read_events)
    raw = RawBench(dsn, read_events)
    es = EventSourcingBench(dsn, read_events)
    try:
        print("populating the read streams", file=sys.stderr, flush=True)
        store.populate_reads()
        raw.populate_reads()
        es.populate_reads()
        groups = build(store, raw, es)
        figures = _run_rounds(groups, rounds, seconds, warmup=min(0.5, seconds / 5))
    finally:
        store.close()
        raw.close(drop=not keep)
        es.close(drop=not keep)
    meta["tenants"] = {"writes": store.write_tenant_id, "reads": store.read_tenant_id}
    meta["duration_seconds"] = round(time.perf_counter() - started, 1)
    meta["load_average_at_end"] = os.getloadavg()[0]
    results = ratios(figures)
    print(render(figures, results, meta))
    write_json(output, figures, results, meta)
    print(f"\nresults written to {output} ({meta['duration_seconds']} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (0.1 if args.quick else 2.0)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 5)
    if seconds <= 0 or rounds < 1:
        raise SystemExit("--seconds must be > 0 and --rounds >= 1")
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    if dsn:
        return run(dsn, quick=args.quick, seconds=seconds, rounds=rounds, output=args.output, keep=args.keep)
    from eventstore_local.standins.postgres import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="eventstore-bench-"))
    print(f"no --dsn or ${DSN_VARIABLE}: starting an embedded PostgreSQL in {data_dir}", file=sys.stderr)
    server = EmbeddedPostgres(data_dir)
    try:
        return run(server.dsn, quick=args.quick, seconds=seconds, rounds=rounds, output=args.output, keep=args.keep)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
