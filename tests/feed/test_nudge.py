"""The nudger's scheduling, driven by a publish function of the test's own (it records calls and
answers like the publisher would; no database or sink is involved in what is tested here)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from eventstore.feed.nudge import Nudger
from eventstore.feed.publisher import SinkRun, TenantRun
from eventstore.models import START


class Recorder:
    def __init__(self, answer: Callable[[str, int], TenantRun] | None = None, hold: float = 0.0) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.answer = answer
        self.hold = hold
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, tenant_id: str) -> TenantRun:
        with self.lock:
            self.calls.append(tenant_id)
            n = self.calls.count(tenant_id)
        self.gate.wait(10)
        time.sleep(self.hold)
        if self.answer is not None:
            return self.answer(tenant_id, n)
        return TenantRun(tenant_id, [SinkRun("eventgrid", START)])

    def count(self, tenant_id: str) -> int:
        with self.lock:
            return self.calls.count(tenant_id)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_nudges_during_a_run_coalesce_into_one_more_run() -> None:
    publish = Recorder()
    publish.gate.clear()
    nudger = Nudger(publish)
    try:
        nudger.nudge("a")
        wait_until(lambda: publish.count("a") == 1)
        for _ in range(20):
            nudger.nudge("a")  # while "a" is being published
        publish.gate.set()
        wait_until(lambda: publish.count("a") == 2)
        time.sleep(0.2)
        assert publish.count("a") == 2  # twenty nudges, one more run
    finally:
        nudger.close()


def test_tenants_are_published_concurrently() -> None:
    together = threading.Barrier(4, timeout=5)  # broken unless four publishes are under way at once

    def answer(tenant_id: str, n: int) -> TenantRun:
        together.wait()
        return TenantRun(tenant_id, [SinkRun("eventgrid", START)])

    publish = Recorder(answer)
    nudger = Nudger(publish, workers=4)
    try:
        for tenant in "abcd":
            nudger.nudge(tenant)
        wait_until(lambda: all(publish.count(t) == 1 for t in "abcd"))
        wait_until(lambda: together.n_waiting == 0)
        assert not together.broken
    finally:
        nudger.close()


def test_a_locked_out_or_waiting_run_is_retried_then_given_up() -> None:
    def answer(tenant_id: str, n: int) -> TenantRun:
        if tenant_id == "locked":
            return TenantRun(tenant_id, [SinkRun("eventgrid", START, locked=n >= 3)])
        return TenantRun(tenant_id, [SinkRun("eventgrid", START, waiting=True)])  # never stops waiting

    publish = Recorder(answer)
    nudger = Nudger(publish, busy_retry=0.01, busy_patience=0.5)
    try:
        nudger.nudge("locked")
        nudger.nudge("waiting")
        wait_until(lambda: publish.count("locked") == 3)
        time.sleep(1.0)
        assert publish.count("locked") == 3  # got the lock on the third try, and stopped
        tries = publish.count("waiting")
        assert 2 < tries < 50  # retried with a growing pause, then left to the timer
        time.sleep(0.3)
        assert publish.count("waiting") == tries
    finally:
        nudger.close()


def test_a_failing_publish_does_not_block_later_nudges() -> None:
    def answer(tenant_id: str, n: int) -> TenantRun:
        if n == 1:
            raise RuntimeError("the database went away")
        return TenantRun(tenant_id, [SinkRun("eventgrid", START)])

    publish = Recorder(answer)
    nudger = Nudger(publish)
    try:
        nudger.nudge("t")
        wait_until(lambda: publish.count("t") == 1)
        time.sleep(0.05)
        nudger.nudge("t")
        wait_until(lambda: publish.count("t") == 2)
    finally:
        nudger.close()
