"""Small in-process counters (failures by queue and reason, problems by status) for the monitoring issue.

Counters live as long as the worker process; they are read by a health route and by tests, and each
increment is mirrored to Application Insights under the same name and labels when telemetry is on
(`eventstore.telemetry`, docs/telemetry.md). Names and labels are fixed strings chosen here, and every
label has a small, bounded set of values (a status, a queue, an exception class; never a tenant or an id):
each set of labels is one series in Application Insights.
"""

from __future__ import annotations

from collections import Counter
from threading import Lock

from eventstore import telemetry


class Counters:
    """Thread-safe named counters with labels: `add("queue_failures", queue="x", reason="invalid")`."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._lock = Lock()

    def add(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] += amount
        telemetry.count(name, amount, labels)

    def get(self, name: str, **labels: str) -> int:
        """The sum of `name` over every label set that has these labels (all of them, with none given)."""
        wanted = set(labels.items())
        with self._lock:
            return sum(
                count for (counted, has), count in self._counts.items() if counted == name and wanted <= set(has)
            )

    def snapshot(self) -> dict[str, int]:
        """Every counter as `name{label=value,...}` -> count."""
        with self._lock:
            return {
                name + ("{" + ",".join(f"{k}={v}" for k, v in labels) + "}" if labels else ""): count
                for (name, labels), count in sorted(self._counts.items())
            }


COUNTERS = Counters()

QUEUE_MESSAGES_RECORDED = "queue_messages_recorded"
QUEUE_MESSAGE_FAILURES = "queue_message_failures"
HTTP_PROBLEMS = "http_problems"
