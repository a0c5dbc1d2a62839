from __future__ import annotations

import ast
import inspect
import itertools
from uuid import uuid4

import pytest

import eventstore.event_types as module
from eventstore import EventType, InvalidEventType, InvalidInput, NewEvent

ISSUE_TYPES = [
    "TriggerReceived",
    "InstanceCreationRequestReceived",
    "InstanceCreated",
    "InstanceCreationFailed",
    "TransitionCompleted",
    "TransitionFailed",
    "WorkflowStarted",
    "StepStarted",
    "StepCompleted",
    "StepFailed",
    "DecisionMade",
    "UserInput",
    "AgentResponse",
    "StateChanged",
    "Error",
    "WorkflowPaused",
    "WorkflowResumed",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "ExecutionStarted",
    "ExecutionCompleted",
    "ExecutionFailed",
    "StepSkipped",
    "ReplayRequested",
    "MessageReplayed",
    "ReplayJobChanged",
    "PayloadsArchived",
    "PartitionCompacted",
    "PayloadsErased",
    "SegmentsDeleted",
    "DataKeysRewrapped",
]


def test_the_enum_holds_exactly_the_agreed_types() -> None:
    assert [m.value for m in EventType] == ISSUE_TYPES


def test_every_member_is_documented() -> None:
    tree = ast.parse(inspect.getsource(module))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "EventType").body
    documented = set()
    for current, following in itertools.pairwise(body):
        if (
            isinstance(current, ast.Assign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
            and following.value.value.strip()
        ):
            documented.add(current.targets[0].id)  # type: ignore[attr-defined]
    assert documented == {m.name for m in EventType}


def test_unknown_type_is_refused_with_the_list_of_valid_ones() -> None:
    with pytest.raises(InvalidEventType) as caught:
        EventType.parse("TriggerRecieved")
    assert all(name in str(caught.value) for name in ISSUE_TYPES)
    assert caught.value.valid == tuple(ISSUE_TYPES)


def test_new_event_parse_raises_typed_errors() -> None:
    with pytest.raises(InvalidEventType):
        NewEvent.parse({"event_id": str(uuid4()), "event_type": "Nope", "payload": b"{}"})
    with pytest.raises(InvalidInput) as bad_id:
        NewEvent.parse({"event_id": "not-a-uuid", "event_type": "Error", "payload": b"{}"})
    assert bad_id.value.field == "event_id"
    with pytest.raises(InvalidInput):
        NewEvent.parse({"event_id": str(uuid4()), "event_type": "Error", "payload": b"{}", "surprise": 1})
    parsed = NewEvent.parse({"event_id": str(uuid4()), "event_type": "Error", "payload": '{"é": 1}'})
    assert parsed.event_type is EventType.ERROR and parsed.payload == '{"é": 1}'.encode()
