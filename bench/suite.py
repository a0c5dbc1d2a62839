"""The workloads of one run, grouped so that the store and its baselines are measured back to back."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from bench.baseline_eventsourcing import EventSourcingBench
from bench.baseline_raw import RawBench
from bench.timing import Op, rate_for, rate_threads
from bench.workloads import StoreBench

WRITERS = 4


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    measure: Callable[[float], float]
    """Seconds to run for -> events per second."""


def _single(op: Op) -> Callable[[float], float]:
    return lambda seconds: rate_for(seconds, op)


def _threads(ops: list[Op]) -> Callable[[float], float]:
    return lambda seconds: rate_threads(seconds, ops)


def build(store: StoreBench, raw: RawBench, es: EventSourcingBench) -> list[list[Case]]:
    """Groups of comparable cases; every op (and its connection, stream, originator) is made here once."""
    tag = secrets.token_hex(3)
    return [
        [
            Case(
                "store.single_1w",
                "store: 1 event/call, one stream, 1 writer",
                _single(store.append_op(f"single-{tag}", 1)),
            ),
            Case(
                "store.single_new_stream",
                "store: 1 event/call, new stream each call",
                _single(store.append_new_stream_op()),
            ),
            Case("raw.single_1w", "raw: 1-row INSERT, autocommit, 1 writer", _single(raw.insert_op(f"single-{tag}"))),
            Case("es.single_1w", "eventsourcing: insert_events(1), 1 writer", _single(es.insert_op(1))),
        ],
        [
            Case(
                "store.single_4w",
                f"store: 1 event/call, {WRITERS} writers, own streams",
                _threads([store.append_op(f"writer{i}-{tag}", 1) for i in range(WRITERS)]),
            ),
            Case(
                "raw.single_4w",
                f"raw: 1-row INSERT, {WRITERS} writers",
                _threads([raw.insert_op(f"writer{i}-{tag}") for i in range(WRITERS)]),
            ),
            Case(
                "es.single_4w",
                f"eventsourcing: insert_events(1), {WRITERS} writers",
                _threads([es.insert_op(1) for _ in range(WRITERS)]),
            ),
        ],
        [
            Case("store.batch10", "store: 10 events/call", _single(store.append_op(f"batch10-{tag}", 10))),
            Case("raw.values10", "raw: 10-row VALUES INSERT", _single(raw.insert_op(f"batch10-{tag}", 10))),
        ],
        [
            Case("store.batch100", "store: 100 events/call", _single(store.append_op(f"batch100-{tag}", 100))),
            Case("raw.values100", "raw: 100-row VALUES INSERT", _single(raw.insert_op(f"batch100-{tag}", 100))),
            Case("raw.copy100", "raw: binary COPY of 100 rows", _single(raw.copy_op(f"copy100-{tag}", 100))),
            Case("es.batch100", "eventsourcing: insert_events(100)", _single(es.insert_op(100))),
        ],
        [
            Case(
                "store.read_stream",
                f"store: read_stream of {store.read_events:,} events",
                _single(store.read_stream_op()),
            ),
            Case(
                "raw.read_stream", f"raw: SELECT {raw.read_events:,} rows, text, tuples", _single(raw.read_stream_op())
            ),
            Case("es.read_stream", f"eventsourcing: select_events of {es.read_events:,}", _single(es.read_stream_op())),
        ],
        [
            Case("store.read_all", "store: read_all from START, pages of 1,000", _single(store.read_all_op(1000))),
            Case("raw.read_all", "raw: keyset pages of 1,000, text, tuples", _single(raw.read_all_op(1000))),
        ],
    ]
