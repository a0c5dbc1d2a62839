"""Measuring throughput: one caller for a while, or several threads at once."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence

Op = Callable[[], int]
"""One call of a workload; returns how many events it wrote or read."""


def rate_for(seconds: float, op: Op, *, min_calls: int = 1) -> float:
    """Events per second of `op` called back to back for `seconds` (at least `min_calls` calls)."""
    events = 0
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        events += op()
        calls += 1
        now = time.perf_counter()
        if now >= deadline and calls >= min_calls:
            return events / (now - start)


def threads_for(
    seconds: float, ops: Sequence[Op], on_start: Callable[[], None] | None = None
) -> tuple[int, int, float]:
    """Each op called back to back in its own thread for `seconds` (timed from when all are ready, when
    `on_start` runs): total events, total calls, elapsed seconds. The first failure is raised."""
    events = [0] * len(ops)
    calls = [0] * len(ops)
    errors: list[BaseException] = []
    ready = threading.Barrier(len(ops) + 1)
    stop = threading.Event()

    def worker(index: int) -> None:
        op = ops[index]
        try:
            ready.wait()
            while not stop.is_set():
                events[index] += op()
                calls[index] += 1
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(ops))]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    try:
        ready.wait()
        if on_start is not None:
            on_start()
        start = time.perf_counter()
        stop.wait(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(events), sum(calls), elapsed


def rate_threads(seconds: float, ops: Sequence[Op]) -> float:
    """Total events per second of `ops`, each called back to back in its own thread for `seconds`."""
    events, _, elapsed = threads_for(seconds, ops)
    return events / elapsed


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
