"""Marain.Workflow wire shapes (from marain-dotnet/Marain.Workflow, made-up ids and values) and the
expense-claim walk that the demo records and the tests replay.

The walk is deterministic (ids are uuid5 of fixed names), so recording it twice is an idempotent repeat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventstore.event_types import EventType
from eventstore.models import InstanceState, NewEvent
from eventstore.store import AUDIT_STREAM_ID, instance_stream_id

LITWARE_TENANT_ID = "75b9261673c2714681f14c97bc0439fb45a820d625de884bb5a127d6b1104f82"
EXPENSES_WORKFLOW_ID = "simple-expenses-workflow"
CLAIM_INSTANCE_ID = "eddee27b-52e7-4c33-a82e-891fc4b359e4"
FAULTED_INSTANCE_ID = "f591fa78-93da-47c4-91ed-bf334a540227"
FAILED_INSTANCE_ID = "dd65b766-f708-43a2-9184-1dd2e0d6270a"
ENVELOPE_CONTENT_TYPE = "application/vnd.marain.workflows.hosted.messageenvelope"


def load(name: str) -> Any:
    """A sample file parsed (e.g. `envelope-trigger.json`)."""
    return json.loads(sample_bytes(name))


def sample_bytes(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def _id(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"urn:eventstore:samples:{name}")


def _bytes(document: Any) -> bytes:
    # Indented like the .NET serialiser's output, so the byte-exact payload differs from a JSONB rendering.
    return json.dumps(document, indent=2).encode()


@dataclass(frozen=True)
class WalkStep:
    """One event of the walk, and the instance state expected right after it (instance streams only)."""

    stream_id: str
    event: NewEvent
    expected: InstanceState | None


def _trigger_envelope(trigger_name: str, parameters: dict[str, str], step: str) -> dict[str, Any]:
    envelope: dict[str, Any] = load("envelope-trigger.json")
    envelope["operationId"] = str(_id(f"claim/{step}/operation"))
    envelope["trigger"]["id"] = str(_id(f"claim/{step}/trigger"))
    envelope["trigger"]["triggerName"] = trigger_name
    envelope["trigger"]["parameters"] = parameters
    return envelope


def _transition(
    trigger: dict[str, Any],
    transition_id: str,
    previous: tuple[str, dict[str, str]],
    new: tuple[str, str, dict[str, str]],
    step: str,
) -> dict[str, Any]:
    event: dict[str, Any] = load("engine-cloudevents.json")[1]
    event["id"] = str(_id(f"claim/{step}/cloudevent"))
    data = event["data"]
    data.update(
        trigger=trigger,
        transitionId=transition_id,
        previousState=previous[0],
        previousContext=previous[1],
        newState=new[0],
        newStatus=new[1],
        newContext=new[2],
    )
    return {**event}


def expense_claim_walk() -> list[WalkStep]:
    """J George's expense claim through simple-expenses-workflow: created, updated, submitted, approved,
    paid; an external-action instance that faults; a start request for an unknown workflow that fails."""
    tenant = LITWARE_TENANT_ID
    claim = instance_stream_id(CLAIM_INSTANCE_ID)
    steps: list[WalkStep] = []
    base_state = InstanceState(workflow_instance_id=CLAIM_INSTANCE_ID, workflow_id=EXPENSES_WORKFLOW_ID)
    sequence = 0

    def audit(event_type: EventType, envelope: dict[str, Any]) -> None:
        steps.append(
            WalkStep(
                AUDIT_STREAM_ID,
                NewEvent(
                    event_id=UUID(envelope["operationId"]),
                    event_type=event_type,
                    payload=_bytes(envelope),
                    content_type="application/json",
                    source_system="marain-workflow-messageprocessing",
                    workflow_id=(envelope.get("startWorkflowInstanceRequest") or {}).get("workflowId"),
                    correlation_id=envelope["operationId"],
                ),
                None,
            )
        )

    def outcome(
        stream: str,
        instance: str,
        event_type: EventType,
        body: dict[str, Any],
        expected: InstanceState,
        causation: str,
        workflow_id: str,
    ) -> None:
        steps.append(
            WalkStep(
                stream,
                NewEvent(
                    event_id=UUID(body["id"]) if "id" in body else _id(f"{instance}/{event_type}"),
                    event_type=event_type,
                    payload=_bytes(body),
                    content_type="application/cloudevents+json" if "specversion" in body else "application/json",
                    workflow_id=workflow_id,
                    workflow_instance_id=instance,
                    causation_id=causation,
                    correlation_id=causation,
                    source_system="marain-workflow-engine",
                    user_id="J George",
                ),
                expected,
            )
        )

    start = load("envelope-start-request.json")
    audit(EventType.INSTANCE_CREATION_REQUEST_RECEIVED, start)
    created = load("engine-cloudevents.json")[0]
    context = dict(created["data"]["newContext"])
    sequence += 1
    state = base_state.model_copy(
        update=dict(
            state_id="waiting-for-submission",
            status="waiting",
            context=context,
            last_sequence=sequence,
            last_event_type=EventType.INSTANCE_CREATED,
        )
    )
    outcome(
        claim, CLAIM_INSTANCE_ID, EventType.INSTANCE_CREATED, created, state, start["operationId"], EXPENSES_WORKFLOW_ID
    )

    walk = [
        ("Update", load("trigger-update.json")["parameters"], "update", "waiting-for-submission", "waiting"),
        ("Submit", {"SubmittedBy": "J George"}, "submit", "waiting-for-approval", "waiting"),
        (
            "Reject",
            {"RejectedBy": "A Manager", "Reason": "Receipt missing"},
            "reject",
            "waiting-for-submission",
            "waiting",
        ),
        ("Submit", {"SubmittedBy": "J George"}, "submit", "waiting-for-approval", "waiting"),
        ("Approve", {"ApprovedBy": "A Manager"}, "approve", "waiting-for-payment", "waiting"),
        ("Pay", {"PaidBy": "Finance"}, "pay", "paid", "complete"),
    ]
    for index, (trigger_name, parameters, transition_id, new_state, new_status) in enumerate(walk):
        step = f"{index}-{transition_id}"
        envelope = _trigger_envelope(trigger_name, parameters, step)
        audit(EventType.TRIGGER_RECEIVED, envelope)
        previous = (str(state.state_id), dict(state.context))
        new_context = {**state.context, **({"LastAction": trigger_name} if trigger_name != "Update" else parameters)}
        body = _transition(envelope["trigger"], transition_id, previous, (new_state, new_status, new_context), step)
        sequence += 1
        state = state.model_copy(
            update=dict(
                state_id=new_state,
                status=new_status,
                context=new_context,
                last_sequence=sequence,
                last_event_type=EventType.TRANSITION_COMPLETED,
            )
        )
        outcome(
            claim,
            CLAIM_INSTANCE_ID,
            EventType.TRANSITION_COMPLETED,
            body,
            state,
            envelope["operationId"],
            EXPENSES_WORKFLOW_ID,
        )

    # An external-action instance that faults on its Run trigger.
    faulted_stream = instance_stream_id(FAULTED_INSTANCE_ID)
    fault = load("engine-cloudevents.json")[2]
    created_ext = {**load("engine-cloudevents.json")[0], "id": str(_id("ext/created")), "subject": FAULTED_INSTANCE_ID}
    created_ext["data"] = {
        **created_ext["data"],
        "workflowInstanceId": FAULTED_INSTANCE_ID,
        "workflowId": "external-action-workflow",
        "newState": fault["data"]["previousState"],
        "newContext": fault["data"]["previousContext"],
        "suppliedContext": fault["data"]["previousContext"],
    }
    ext_state = InstanceState(
        workflow_instance_id=FAULTED_INSTANCE_ID,
        workflow_id="external-action-workflow",
        state_id=fault["data"]["previousState"],
        status="waiting",
        context=fault["data"]["previousContext"],
        last_sequence=1,
        last_event_type=EventType.INSTANCE_CREATED,
    )
    outcome(
        faulted_stream,
        FAULTED_INSTANCE_ID,
        EventType.INSTANCE_CREATED,
        created_ext,
        ext_state,
        str(_id("ext/start")),
        "external-action-workflow",
    )
    run = _trigger_envelope("Run", {}, "ext-run")
    run["trigger"] = fault["data"]["trigger"]
    run["properties"] = {"WorkflowInstanceId": FAULTED_INSTANCE_ID}
    audit(EventType.TRIGGER_RECEIVED, run)
    ext_state = ext_state.model_copy(
        update=dict(
            status="faulted",
            last_sequence=2,
            last_event_type=EventType.TRANSITION_FAILED,
            last_error=f"{EventType.TRANSITION_FAILED} at sequence 2",
        )
    )
    outcome(
        faulted_stream,
        FAULTED_INSTANCE_ID,
        EventType.TRANSITION_FAILED,
        fault,
        ext_state,
        run["operationId"],
        "external-action-workflow",
    )

    # A start request for a workflow that does not exist: creation fails.
    unknown = load("start-request-unknown-workflow.json")
    envelope = {**start, "operationId": str(_id("unknown/operation")), "startWorkflowInstanceRequest": unknown}
    audit(EventType.INSTANCE_CREATION_REQUEST_RECEIVED, envelope)
    failure = {
        "id": str(_id("unknown/failed")),
        "workflowId": unknown["workflowId"],
        "workflowInstanceId": unknown["workflowInstanceId"],
        "requestId": unknown["requestId"],
        "context": unknown["context"],
        "error": f"The workflow with id {unknown['workflowId']} was not found.",
    }
    failed_state = InstanceState(
        workflow_instance_id=FAILED_INSTANCE_ID,
        workflow_id=unknown["workflowId"],
        status="faulted",
        context=unknown["context"],
        last_sequence=1,
        last_event_type=EventType.INSTANCE_CREATION_FAILED,
        last_error=failure["error"],
    )
    outcome(
        instance_stream_id(FAILED_INSTANCE_ID),
        FAILED_INSTANCE_ID,
        EventType.INSTANCE_CREATION_FAILED,
        failure,
        failed_state,
        envelope["operationId"],
        unknown["workflowId"],
    )
    assert tenant == LITWARE_TENANT_ID
    return steps
