"""Wire models of `GET /tenants/{tenantId}/messages/{eventId}/compare`: two executions side by side, step by
step (docs/traces.md, "Comparing runs"). camelCase and frozen like the other wire models; the OpenAPI
document is generated from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from eventstore.http.models import ExecutionItem, SkippedFor, StepStatus, TraceError, ViewReadQuery
from eventstore.store import NO_CONTROL_CHARACTERS

MAX_EXECUTION_ID_LENGTH = 256

Chosen = Literal["given", "latest-failed", "latest-succeeded", "workflow-latest-succeeded"]
Compared = Literal["status", "attempts", "input", "output", "error"]


def _execution_param(side: str, default: str) -> str | None:
    return Field(
        default=None,
        min_length=1,
        max_length=MAX_EXECUTION_ID_LENGTH,
        pattern=NO_CONTROL_CHARACTERS,
        description=f"The execution on the {side} (an execution id the engine reported). Default: {default}",
    )


class CompareQuery(ViewReadQuery):
    left: str | None = _execution_param(
        "left", "the message's latest failed execution. One named must have processed this message."
    )
    right: str | None = _execution_param(
        "right",
        "the message's latest succeeded execution, else the latest succeeded execution of the same workflow. "
        "One named must have processed this message or another of the same workflow.",
    )


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _duration() -> Any:
    return Field(
        alias="durationMs",
        ge=0,
        description="completedAt - startedAt in whole milliseconds; null without both, or when the end was "
        "recorded before the start (events reported out of order).",
    )


class ComparedExecution(ExecutionItem):
    """An execution on one side, and which rule put it there."""

    duration_ms: int | None = _duration()
    chosen: Chosen = Field(
        description="given (named in the query); latest-failed (the message's latest failed execution); "
        "latest-succeeded (the message's latest succeeded execution); workflow-latest-succeeded (the latest "
        "succeeded execution of the same workflow, any message: this message has none)."
    )


class ComparedStep(_Wire):
    """One side of a step pair: the step as its trace shows it (input and output whole)."""

    step_id: str = Field(alias="stepId")
    status: StepStatus
    attempts: int = Field(description="The highest attempt reported.")
    idempotency_key: str | None = Field(alias="idempotencyKey")
    duration_ms: int | None = _duration()
    started_at: datetime | None = Field(alias="startedAt")
    completed_at: datetime | None = Field(alias="completedAt")
    input: JsonValue = Field(description="The input of its last attempt, whole.")
    output: JsonValue = Field(description="Its output, whole; for a skipped step, that of the step it reused.")
    input_event_id: str | None = Field(
        alias="inputEventId", description="Set when the input is over 64 KiB: the event that carried it."
    )
    output_event_id: str | None = Field(
        alias="outputEventId", description="Set when the output is over 64 KiB: the event that carried it."
    )
    error: TraceError | None = Field(description="Why its last attempt failed, while it has failed.")
    skipped_for: SkippedFor | None = Field(
        alias="skippedFor", description="For a skipped step: the step that succeeded, whose output it reused."
    )


class StepComparison(_Wire):
    """The n-th step of a name on the left beside the n-th step of that name on the right."""

    name: str | None
    occurrence: int = Field(ge=1, description="Which step of this name on each side (1: the first).")
    differences: list[Compared] = Field(
        description="What differs: status, attempts, input, output, error (JSON equality). A step on one side "
        "only differs in all of them."
    )
    left: ComparedStep | None = Field(description="Null when only the right side has this step.")
    right: ComparedStep | None = Field(description="Null when only the left side has this step.")


class RunComparison(_Wire):
    message_event_id: str = Field(alias="messageEventId")
    left: ComparedExecution
    right: ComparedExecution
    steps: list[StepComparison] = Field(
        description="Paired by name in order; in the left side's order, a step only the right side has after "
        "the step that precedes it there."
    )
