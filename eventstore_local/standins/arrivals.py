"""What the stand-ins of the alert channels and of Application Insights keep alike: what they accepted, the
status of every answer, and the failures they were told to answer next, under one lock that the handler
threads and a test's `wait_for` share. The protocol (paths, checks, pacing, answers) stays in each stand-in.

    arrivals = Arrivals[SlackPost, int]("Slack posts")
    arrivals.wait_for(3, 10.0)  # TimeoutError: "1 of 3 Slack posts arrived in 10.0 s"
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import parse_qs

T = TypeVar("T")
F = TypeVar("F")


@dataclass(frozen=True)
class Fault:
    """A failure an HTTP stand-in was told to answer: the status, and the `Retry-After` header to send (if any)."""

    status: int
    retry_after: str | None = None

    @classmethod
    def of(cls, status: int, retry_after: float | None = None) -> Fault:
        return cls(status, None if retry_after is None else f"{retry_after:g}")


class Arrivals(Generic[T, F]):
    """The items a stand-in accepted (`T`), in arrival order, the statuses it answered, and its queued faults
    (`F`: whatever the stand-in answers a fault with). `noun` names the items in `wait_for`'s TimeoutError."""

    def __init__(self, noun: str) -> None:
        self.noun = noun
        # Reentrant (a Condition's default lock): a stand-in holds it across a decision and the recording of its
        # outcome (Slack's rate check, ACS's operations), and a `wait_until` condition may read the stand-in.
        self.changed = threading.Condition()
        self._items: list[T] = []
        self._statuses: list[int] = []
        self._faults: deque[F] = deque()

    @property
    def items(self) -> list[T]:
        """What was accepted, in arrival order (a copy)."""
        with self.changed:
            return list(self._items)

    @property
    def statuses(self) -> list[int]:
        """Every status answered, in order (a copy)."""
        with self.changed:
            return list(self._statuses)

    def __len__(self) -> int:
        with self.changed:
            return len(self._items)

    def accept(self, *items: T) -> None:
        with self.changed:
            self._items.extend(items)
            self.changed.notify_all()

    def answered(self, status: int) -> None:
        with self.changed:
            self._statuses.append(status)
            self.changed.notify_all()

    def clear(self) -> None:
        """Forget the items and the statuses; queued faults stay."""
        with self.changed:
            self._items.clear()
            self._statuses.clear()

    def fail_next(self, n: int, fault: F, *, zero_clears: bool = True) -> None:
        """Queue `fault` for the next `n` requests; `n=0` clears the faults still queued (unless `zero_clears`
        is False: then it queues nothing)."""
        with self.changed:
            if n == 0 and zero_clears:
                self._faults.clear()
            self._faults.extend([fault] * n)

    def next_fault(self) -> F | None:
        """The fault the next request gets, taken off the queue; None when none is queued."""
        with self.changed:
            return self._faults.popleft() if self._faults else None

    def wait_until(self, condition: Callable[[], bool], timeout: float, poll: float | None = None) -> bool:
        """Block until `condition()` (checked under the lock, at each change and at least every `poll` seconds)
        holds: True, or False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining if poll is None else min(remaining, poll))
            return True

    def wait_for(self, count: int, timeout: float) -> list[T]:
        """Block until at least `count` items were accepted and return them; `TimeoutError` otherwise."""
        with self.changed:
            if not self.wait_until(lambda: len(self._items) >= count, timeout):
                raise TimeoutError(f"{len(self._items)} of {count} {self.noun} arrived in {timeout} s")
            return list(self._items)

    def page(self, query: str) -> tuple[list[tuple[int, T]], int]:
        """For `GET /received?after=N` (not the real service's): the items of index > N with their indexes (all
        of them without `after` or with one that is not a number), and how many there are in all."""
        try:
            start = max(int(parse_qs(query).get("after", ["-1"])[0]) + 1, 0)
        except ValueError:
            start = 0
        with self.changed:
            return list(enumerate(self._items[start:], start=start)), len(self._items)
