"""Two executions side by side, step by step: the execution in the URL (left) beside the run that fixed it or
the last good run of its workflow (right), or the execution `?with=` names. Inputs, outputs, durations and
errors per step, what differs marked. The comparison is `query.compare.compare_runs`, as the JSON API's
`GET /tenants/{t}/messages/{eventId}/compare` answers it; a comparison it refuses is a page saying why."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute, Missing, Page
from eventstore.errors import InvalidInput
from eventstore.query import compare
from eventstore.query.traces import ExecutionRow, StepTrace, executions_of_message, read_trace
from eventstore.views.traces import FAILED, SKIPPED, SUCCEEDED, label

MAX_EXECUTION_ID_LENGTH = 256
"""As the JSON API's `left` and `right` (and the executions view's ids)."""
WITH = "with"

CHOSEN = {
    compare.GIVEN: "the execution asked for",
    compare.LATEST_SUCCEEDED: "the latest run of this message that succeeded",
    compare.WORKFLOW_LATEST_SUCCEEDED: "the latest run of this workflow that succeeded (another message)",
    compare.LATEST_FAILED: "the latest run of this message that failed",
}
_PICKED_FAILED = "the latest run of this message that failed (this one did not)"


@dataclass(frozen=True)
class Cell:
    """One side's value of one thing a step is compared on: text, or JSON text shown as a block (`payload`, or
    `error`)."""

    text: str | None
    block: str | None = None


@dataclass(frozen=True)
class Line:
    what: str
    left: Cell
    right: Cell
    differs: bool


@dataclass(frozen=True)
class StepShown:
    name: str
    occurrence: int
    differences: tuple[str, ...]
    lines: list[Line]
    left: StepTrace | None
    right: StepTrace | None


def _duration(step: StepTrace) -> str | None:
    taken = compare.duration_ms(step.row.started_at, step.row.completed_at)
    return None if taken is None else f"{taken} ms"


def _cells(step: StepTrace | None) -> dict[str, Cell]:
    if step is None:
        absent = {what: Cell(None) for what in ("attempts", "duration", "input", "output", "error")}
        return {"status": Cell("not in this run"), **absent}
    row = step.row
    status = row.status
    if row.status == SKIPPED and row.skipped_for_execution_id:
        status = f"{row.status} (reused the output of execution {row.skipped_for_execution_id})"
    return {
        "status": Cell(status),
        "attempts": Cell(str(row.attempts)),
        "duration": Cell(_duration(step)),
        "input": Cell(step.input, block="payload"),
        "output": Cell(step.output, block="payload"),
        "error": Cell(row.error, block="error"),
    }


def shown_steps(pairs: list[compare.StepPair]) -> list[StepShown]:
    out = []
    for pair in pairs:
        left, right = _cells(pair.left), _cells(pair.right)
        # Durations are not compared (two runs never take the same time): shown, never marked.
        lines = [Line(what, left[what], right[what], what in pair.differences) for what in left]
        either = pair.left or pair.right
        name = pair.name or (either.row.step_id if either is not None else "")
        out.append(StepShown(name, pair.occurrence, pair.differences, lines, pair.left, pair.right))
    return out


def _execution_id(value: str, name: str) -> str:
    if label(value, MAX_EXECUTION_ID_LENGTH) is None:
        raise InvalidInput(
            f"{name} must be 1 to {MAX_EXECUTION_ID_LENGTH} characters without control characters", field=name
        )
    return value


def _with(asked: Asked) -> str | None:
    value = asked.req.params.get(WITH)
    return None if value is None or value == "" else _execution_id(value, WITH)


def _nothing(
    asked: Asked, tenant_id: str, run: ExecutionRow, others: list[ExecutionRow], given: str | None, why: str
) -> Page:
    page = asked.page(
        "compare.html", f"Compare execution {run.execution_id}", tenant_id=tenant_id, section="messages",
        run=run, comparison=None, why=why, others=others, given=given,
    )  # fmt: skip
    return Page(page.template, page.context, status=409)


def compare_page(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    execution_id = asked.route("executionId")
    if label(execution_id, MAX_EXECUTION_ID_LENGTH) is None:
        raise Missing(f"{execution_id!r} is not an execution id")
    given = _with(asked)
    found = read_trace(asked.store, tenant_id, execution_id)
    if found is None:
        raise Missing(f"no execution {execution_id!r} is recorded in this tenant")
    run = found.execution
    if given == execution_id:
        raise InvalidInput(f"{WITH} names execution {execution_id!r} itself; name another one", field=WITH)
    event_id: UUID | None = run.message_event_id
    runs = executions_of_message(asked.store, tenant_id, event_id) if event_id is not None else None
    others = [r for r in runs or [] if r.execution_id != execution_id]
    if event_id is None or runs is None:
        what = "names no message" if event_id is None else f"names message {event_id}, which is not recorded"
        return _nothing(asked, tenant_id, run, others, given, f"Execution {execution_id!r} {what}: nothing pairs "
                        "with it.")  # fmt: skip
    right, picked = given, None
    if right is None and run.status == SUCCEEDED:
        # The defaults put a failed run on the left; beside one that succeeded, its message's latest failed run.
        failed = next((r for r in reversed(others) if r.status == FAILED), None)
        right, picked = (failed.execution_id, _PICKED_FAILED) if failed is not None else (None, None)
    try:
        found_pair = compare.compare_runs(asked.store, tenant_id, event_id, left=execution_id, right=right)
    except compare.UnknownExecution as exc:
        raise Missing(f"{WITH}: {exc.detail}") from None
    except compare.NotComparable as exc:
        raise InvalidInput(exc.detail, field=WITH if exc.side == compare.RIGHT else "executionId") from None
    except compare.NothingToCompare as exc:
        return _nothing(asked, tenant_id, run, others, given, exc.detail)
    if found_pair is None:  # its message went between the two reads
        return _nothing(asked, tenant_id, run, others, given, f"Message {event_id} is not recorded.")
    left, right_side = found_pair.left.trace.execution, found_pair.right.trace.execution
    return asked.page(
        "compare.html", f"Compare execution {execution_id}", tenant_id=tenant_id, section="messages", run=run,
        comparison=found_pair, why=None, others=others, given=given, left=left, right=right_side,
        right_chosen=picked or CHOSEN.get(found_pair.right.chosen, found_pair.right.chosen),
        steps=shown_steps(found_pair.steps), differing=sum(1 for p in found_pair.steps if p.differences),
    )  # fmt: skip


ROUTES = (ConsoleRoute("console_compare", f"{TENANT}/executions/{{executionId}}/compare", compare_page),)
