"""An execution's trace: its steps as a waterfall by start and end, their attempts, inputs, outputs and the
destination's error; the steps a replay did not run again are marked, with the step whose output they
reused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute, Missing
from eventstore.query.traces import StepTrace, read_trace

WATERFALL_WIDTH = 1000


@dataclass(frozen=True)
class Bar:
    step: StepTrace
    x: int
    width: int
    duration_ms: int | None


def waterfall(started: datetime, ended: datetime | None, steps: list[StepTrace]) -> list[Bar]:
    """Each step's bar on a scale from the execution's start to its end (or its last step's)."""
    moments = [m for s in steps for m in (s.row.started_at, s.row.completed_at) if m is not None]
    end = max([ended, *moments] if ended else moments or [started])
    span = max((end - started).total_seconds(), 0.001)
    bars = []
    for step in steps:
        first = step.row.started_at or step.row.first_at
        last = step.row.completed_at or first
        x = int(WATERFALL_WIDTH * max(0.0, (first - started).total_seconds()) / span)
        width = max(4, int(WATERFALL_WIDTH * max(0.0, (last - first).total_seconds()) / span))
        duration = int((last - first).total_seconds() * 1000) if step.row.completed_at else None
        bars.append(Bar(step, min(x, WATERFALL_WIDTH - 4), min(width, WATERFALL_WIDTH - min(x, WATERFALL_WIDTH - 4)),
                        duration))  # fmt: skip
    return bars


def trace(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    execution_id = asked.route("executionId")
    found = read_trace(asked.store, tenant_id, execution_id)
    if found is None:
        raise Missing(f"no execution {execution_id!r} is recorded in this tenant")
    run = found.execution
    duration = int((run.completed_at - run.started_at).total_seconds() * 1000) if run.completed_at else None
    return asked.page(
        "trace.html", f"Execution {execution_id}", tenant_id=tenant_id, section="messages", run=run,
        bars=waterfall(run.started_at, run.completed_at, found.steps), width=WATERFALL_WIDTH, duration_ms=duration,
    )  # fmt: skip


ROUTES = (ConsoleRoute("console_execution", f"{TENANT}/executions/{{executionId}}", trace),)
