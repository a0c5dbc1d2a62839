"""The ingest mapping on its own: Marain envelopes and engine CloudEvents, our own outcome shape, exact
payload spans, and what is refused (no database needed); then the one `Recorded` every record function
answers with (PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest

from eventstore import (
    AUDIT_STREAM_ID,
    EventStore,
    EventType,
    InvalidEventType,
    InvalidInput,
    InvalidTenantId,
    TenantEvents,
)
from eventstore.errors import UnsupportedContentType
from eventstore.ingest import (
    CLOUDEVENT_BATCH_CONTENT_TYPE,
    CLOUDEVENT_CONTENT_TYPE,
    CLOUDEVENT_ID_NAMESPACE,
    CLOUDEVENT_TYPES,
    Recorded,
    check_message_content_type,
    cloudevent_event_id,
    envelope_to_event,
    outcomes_to_events,
    parse_outcome_message,
    record_message,
    record_outcomes,
    record_queued_message,
    record_queued_outcomes,
)
from eventstore.store import instance_stream_id
from eventstore_local.samples import CLAIM_INSTANCE_ID, FAULTED_INSTANCE_ID, LITWARE_TENANT_ID, load, sample_bytes

TENANT = LITWARE_TENANT_ID


def cloudevents() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = load("engine-cloudevents.json")
    return events


def outcomes(
    body: bytes, content_type: str | None = "application/json", instance: str = CLAIM_INSTANCE_ID
) -> list[Any]:
    return list(outcomes_to_events(body, content_type, tenant_id=TENANT, workflow_instance_id=instance))


# --- messages -----------------------------------------------------------------------------------------


def test_a_trigger_envelope_becomes_trigger_received_with_its_exact_bytes() -> None:
    raw = sample_bytes("envelope-trigger.json")
    stream_id, event = envelope_to_event(TENANT, raw, "http")
    assert stream_id == AUDIT_STREAM_ID
    assert event.event_type == EventType.TRIGGER_RECEIVED
    assert event.event_id == UUID("7e7033bf-3e51-4df6-94d0-a51fc0f9afc3")
    assert event.payload == raw
    assert event.content_type == "application/json"
    assert event.workflow_instance_id == CLAIM_INSTANCE_ID  # properties.WorkflowInstanceId
    assert event.workflow_id is None
    assert event.correlation_id == "7e7033bf-3e51-4df6-94d0-a51fc0f9afc3"
    assert event.source_system == "http"


def test_a_start_request_envelope_becomes_instance_creation_request_received() -> None:
    raw = sample_bytes("envelope-start-request.json")
    _, event = envelope_to_event(TENANT, raw, "queue")
    assert event.event_type == EventType.INSTANCE_CREATION_REQUEST_RECEIVED
    assert (event.workflow_id, event.workflow_instance_id) == ("simple-expenses-workflow", CLAIM_INSTANCE_ID)
    assert event.source_system == "queue"
    assert event.payload == raw


def test_the_instance_falls_back_to_the_triggers_single_subject() -> None:
    envelope = load("envelope-trigger.json")
    envelope["properties"] = {}
    _, event = envelope_to_event(TENANT, json.dumps(envelope).encode(), "http")
    assert event.workflow_instance_id == CLAIM_INSTANCE_ID
    envelope["trigger"]["subjects"] = ["a", "b"]
    _, event = envelope_to_event(TENANT, json.dumps(envelope).encode(), "http")
    assert event.workflow_instance_id is None


def test_the_same_message_maps_to_the_same_event() -> None:
    raw = sample_bytes("envelope-trigger.json")
    assert envelope_to_event(TENANT, raw, "http") == envelope_to_event(TENANT, raw, "http")


def _envelope(**changes: Any) -> bytes:
    envelope = load("envelope-trigger.json")
    envelope.update(changes)
    return json.dumps(envelope).encode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_envelope(operationId="not-a-uuid"), "operationId"),
        (_envelope(tenantId="0" * 64), "tenantId"),
        (_envelope(tenantId="NOT A TENANT"), "tenantId"),
        (_envelope(isStartWorkflowRequest=True), "isTrigger"),
        (_envelope(isTrigger=False), "isTrigger"),
        (_envelope(isTrigger="true"), "isTrigger"),
        (_envelope(trigger=None), "trigger"),
        (_envelope(isTrigger=False, isStartWorkflowRequest=True), "startWorkflowInstanceRequest"),
        (b'{"tenantId": "x", "tenantId": "y"}', "message.tenantId"),
        (b"[1, 2]", "message"),
        (b"", "body"),
        (b"{", "body"),
        (b'{"a": NaN}', "body"),
        (b"\xff\xfe", "body"),
        (sample_bytes("envelope-trigger.json") + b" {}", "body"),
    ],
)
def test_bad_envelopes_are_refused_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        envelope_to_event(TENANT, body, "http")
    assert caught.value.field == field, caught.value


def test_a_bad_route_tenant_is_an_invalid_tenant_id() -> None:
    with pytest.raises(InvalidTenantId):
        envelope_to_event("Litware", sample_bytes("envelope-trigger.json"), "http")


def test_a_guid_tenant_matches_in_any_case() -> None:
    guid = "5A0F8E7C-6B1D-4E2A-9C3B-7D6E5F4A3B2C"
    _, event = envelope_to_event(guid.lower(), _envelope(tenantId=guid), "http")
    assert event.event_type == EventType.TRIGGER_RECEIVED


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/vnd.marain.workflows.hosted.messageenvelope",
     "application/vnd.example+json", "Application/JSON"],
)  # fmt: skip
def test_message_content_types_taken(content_type: str) -> None:
    check_message_content_type(content_type)


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/x-www-form-urlencoded"])
def test_message_content_types_refused(content_type: str | None) -> None:
    with pytest.raises(UnsupportedContentType):
        check_message_content_type(content_type)


def test_a_charset_other_than_utf8_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_message_content_type("application/json; charset=latin-1")
    assert not isinstance(caught.value, UnsupportedContentType)


# --- outcomes: engine CloudEvents ---------------------------------------------------------------------


def test_engine_cloudevents_map_to_our_types() -> None:
    created, transition, faulted = cloudevents()
    assert outcomes(json.dumps(created).encode(), CLOUDEVENT_CONTENT_TYPE)[0].event_type == EventType.INSTANCE_CREATED
    assert outcomes(json.dumps(transition).encode())[0].event_type == EventType.TRANSITION_COMPLETED
    fault = outcomes(json.dumps(faulted).encode(), instance=FAULTED_INSTANCE_ID)[0]
    assert fault.event_type == EventType.TRANSITION_FAILED
    assert set(CLOUDEVENT_TYPES.values()) == {
        EventType.INSTANCE_CREATED,
        EventType.TRANSITION_COMPLETED,
        EventType.TRANSITION_FAILED,
    }


def test_a_single_cloudevent_is_stored_whole_and_exact() -> None:
    raw = b'\n  {"specversion" : "1.0", "id":"a202f027-299e-4612-bdc2-084bd903e2f6",\t"source":"s",\n'
    raw += b'"type":"io.marain.workflow.instance.created", "subject": "' + CLAIM_INSTANCE_ID.encode() + b'",'
    raw += b' "data": {"workflowId": "w\\u00e9", "n": 1.0e0, "n": 2}, "maraintenantid": "' + TENANT.encode() + b'"}\n'
    (event,) = outcomes(raw, CLOUDEVENT_CONTENT_TYPE)
    assert event.payload == raw
    assert event.content_type == CLOUDEVENT_CONTENT_TYPE
    assert event.event_id == UUID("a202f027-299e-4612-bdc2-084bd903e2f6")
    assert event.workflow_id == "wé"
    assert event.workflow_instance_id == CLAIM_INSTANCE_ID
    assert event.source_system == "s"


def test_a_batch_keeps_each_cloudevents_exact_text() -> None:
    created, transition, _ = cloudevents()
    texts = [json.dumps(created, indent=3), json.dumps(transition, separators=(",", ":"))]
    raw = ("[ " + " ,\n\t".join(texts) + " ]").encode()
    events = outcomes(raw, CLOUDEVENT_BATCH_CONTENT_TYPE)
    assert [e.payload for e in events] == [t.encode() for t in texts]
    assert [e.event_type for e in events] == [EventType.INSTANCE_CREATED, EventType.TRANSITION_COMPLETED]


def test_a_cloudevent_id_that_is_not_a_uuid_gets_a_uuid5_of_source_and_id() -> None:
    created = {**cloudevents()[0], "id": "evt-1"}
    (event,) = outcomes(json.dumps(created).encode())
    expected = uuid5(CLOUDEVENT_ID_NAMESPACE, json.dumps([created["source"], "evt-1"]))
    assert event.event_id == expected == cloudevent_event_id(created["source"], "evt-1")
    assert cloudevent_event_id("other-source", "evt-1") != expected


def test_optional_cloudevent_extensions_fill_the_metadata() -> None:
    created = {**cloudevents()[0], "userid": "J George", "correlationid": "c-1", "causationid": "op-1"}
    (event,) = outcomes(json.dumps(created).encode())
    assert (event.user_id, event.correlation_id, event.causation_id) == ("J George", "c-1", "op-1")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "io.marain.workflow.instance.deleted"}, "type"),
        ({"subject": "another-instance"}, "subject"),
        ({"maraintenantid": "0" * 64}, "maraintenantid"),
        ({"specversion": "0.3"}, "specversion"),
        ({"id": ""}, "id"),
        ({"source": 7}, "source"),
    ],
)
def test_bad_cloudevents_are_refused(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        outcomes(json.dumps({**cloudevents()[0], **change}).encode())
    assert caught.value.field == field


def test_an_unknown_cloudevent_type_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        outcomes(json.dumps({**cloudevents()[0], "type": "x"}).encode())
    assert all(known in str(caught.value) for known in CLOUDEVENT_TYPES)


def test_a_cloudevent_whose_data_names_another_instance_is_refused() -> None:
    created = cloudevents()[0]
    created["data"]["workflowInstanceId"] = "other"
    with pytest.raises(InvalidInput) as caught:
        outcomes(json.dumps(created).encode())
    assert caught.value.field == "data.workflowInstanceId"


def test_cloudevent_content_types_must_match_the_body() -> None:
    created = json.dumps(cloudevents()[0]).encode()
    with pytest.raises(InvalidInput):
        outcomes(b"[" + created + b"]", CLOUDEVENT_CONTENT_TYPE)
    with pytest.raises(InvalidInput):
        outcomes(created, CLOUDEVENT_BATCH_CONTENT_TYPE)
    native = json.dumps({"eventId": str(uuid4()), "eventType": "Error", "payload": {}}).encode()
    with pytest.raises(InvalidInput) as caught:
        outcomes(b"[" + native + b"]", CLOUDEVENT_BATCH_CONTENT_TYPE)
    assert caught.value.field == "events[0].specversion"
    with pytest.raises(UnsupportedContentType):
        outcomes(created, "text/plain")
    with pytest.raises(UnsupportedContentType):
        outcomes(created, None)


# --- outcomes: our own shape --------------------------------------------------------------------------

ODD_PAYLOADS = [
    b'{"b": 1,   "a" :\t[1 ,2],\n "b": 2}',  # duplicate keys and odd whitespace
    b'"caf\\u00e9 \\ud83d\\ude00 \\u0000"',  # escapes, a surrogate pair, NUL
    b'{"\xc3\xa9t\xc3\xa9": "\xe2\x82\xac"}',  # raw UTF-8
    b"12345678901234567890123456789.000e-3",  # a number no float keeps
    b"[]",
    b"null",
    b"9" * 5000,  # more digits than Python converts to int
    b'{"deep": ' + b"[" * 50 + b"]" * 50 + b"}",
]


@pytest.mark.parametrize("payload", ODD_PAYLOADS)
def test_a_native_payload_is_its_exact_text(payload: bytes) -> None:
    event_id = uuid4()
    raw = b'{ "eventType" : "StepCompleted",\n  "payload" :  ' + payload + b"  , "
    raw += b'"eventId": "' + str(event_id).encode() + b'", "userId": "u", "correlationId": "c", '
    raw += b'"causationId": "k", "sourceSystem": "engine", "workflowId": "w", "contentType": "application/json"}'
    (event,) = outcomes(raw)
    assert event.payload == payload
    assert event.event_id == event_id
    assert (event.user_id, event.correlation_id, event.causation_id, event.source_system, event.workflow_id) == (
        "u",
        "c",
        "k",
        "engine",
        "w",
    )
    assert event.workflow_instance_id == CLAIM_INSTANCE_ID


def test_a_batch_of_native_and_cloudevent_items_keeps_its_order() -> None:
    first, second = uuid4(), uuid4()
    raw = (
        f'[{{"eventId": "{first}", "eventType": "StepStarted", "payload": {{"step": 1}}}},'
        f"{json.dumps(cloudevents()[1])},"
        f'{{"eventId": "{second}", "eventType": "StepCompleted", "payload": [1,2,3]}}]'
    ).encode()
    events = outcomes(raw)
    assert [e.event_type for e in events] == [
        EventType.STEP_STARTED,
        EventType.TRANSITION_COMPLETED,
        EventType.STEP_COMPLETED,
    ]
    assert events[0].payload == b'{"step": 1}' and events[2].payload == b"[1,2,3]"
    assert events[1].content_type == CLOUDEVENT_CONTENT_TYPE


def test_an_unknown_event_type_lists_the_valid_ones() -> None:
    raw = json.dumps([{"eventId": str(uuid4()), "eventType": "Nope", "payload": 1}]).encode()
    with pytest.raises(InvalidEventType) as caught:
        outcomes(raw)
    assert caught.value.field == "events[0].eventType"
    assert "TransitionFailed" in caught.value.valid


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"eventId": "x", "eventType": "Error", "payload": 1}, "events[0].eventId"),
        ({"eventType": "Error", "payload": 1}, "events[0].eventId"),
        ({"eventId": "6f1c2f9e-54a4-4a55-8b0b-0b7e8b3c7c11", "eventType": "Error"}, "events[0].payload"),
        ({"eventId": "6f1c2f9e-54a4-4a55-8b0b-0b7e8b3c7c11", "eventType": "Error", "payload": 1, "x": 1},
         "events[0].x"),
        ({"eventId": "6f1c2f9e-54a4-4a55-8b0b-0b7e8b3c7c11", "eventType": "Error", "payload": 1,
          "contentType": "text/plain"}, "events[0].contentType"),
        ({"eventId": "6f1c2f9e-54a4-4a55-8b0b-0b7e8b3c7c11", "eventType": "Error", "payload": 1, "userId": 7},
         "events[0].userId"),
        ({"eventId": "6f1c2f9e-54a4-4a55-8b0b-0b7e8b3c7c11", "eventType": "Error", "payload": 1,
          "userId": "x\u0000"}, "events[0].userId"),
    ],
)  # fmt: skip
def test_bad_native_items_are_refused_naming_the_field(item: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        outcomes(json.dumps([item]).encode())
    assert caught.value.field == field


@pytest.mark.parametrize(
    "body",
    [b"[]", b"[1]", b'[{"eventId": 1}] x', b"", b"  ", b"[{}", b'{"payload": 1, "payload": 2}', b"\xc3\x28"],
)
def test_malformed_outcome_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        outcomes(body)


def test_the_route_instance_id_is_validated() -> None:
    with pytest.raises(InvalidInput) as caught:
        outcomes(json.dumps(cloudevents()[0]).encode(), instance="x" * 300)
    assert caught.value.field == "instanceId"  # the route's parameter


# --- the workflow-outcomes queue ----------------------------------------------------------------------


def test_a_queued_cloudevent_names_its_tenant_and_instance() -> None:
    raw = json.dumps(cloudevents()[2], indent=2).encode()
    message = parse_outcome_message(raw)
    assert (message.tenant_id, message.workflow_instance_id) == (TENANT, FAULTED_INSTANCE_ID)
    assert [e.payload for e in message.events] == [raw]


def test_a_queued_array_of_cloudevents_must_be_one_instance() -> None:
    created, transition, faulted = cloudevents()
    message = parse_outcome_message(json.dumps([created, transition]).encode())
    assert len(message.events) == 2 and message.workflow_instance_id == CLAIM_INSTANCE_ID
    with pytest.raises(InvalidInput):
        parse_outcome_message(json.dumps([created, faulted]).encode())


def test_a_queued_wrapper_carries_tenant_instance_and_events() -> None:
    event_id = uuid4()
    raw = (
        f'{{"tenantId": "{TENANT}", "workflowInstanceId": "i-1", "events": ['
        f'{{"eventId": "{event_id}", "eventType": "UserInput", "payload": {{ "answer" : 42 }} }}]}}'
    ).encode()
    message = parse_outcome_message(raw)
    assert (message.tenant_id, message.workflow_instance_id) == (TENANT, "i-1")
    assert message.events[0].payload == b'{ "answer" : 42 }'
    assert message.events[0].event_id == event_id


@pytest.mark.parametrize(
    "body",
    [
        b'{"workflowInstanceId": "i", "events": []}',
        f'{{"tenantId": "{TENANT}", "events": []}}'.encode(),
        f'{{"tenantId": "{TENANT}", "workflowInstanceId": "i", "events": {{}}}}'.encode(),
        f'{{"tenantId": "{TENANT}", "workflowInstanceId": "i", "events": []}}'.encode(),
        f'{{"tenantId": "{TENANT}", "workflowInstanceId": "i", "events": [], "x": 1}}'.encode(),
        json.dumps({k: v for k, v in load("engine-cloudevents.json")[0].items() if k != "maraintenantid"}).encode(),
        b"not json",
    ],
)
def test_bad_queued_outcomes_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_outcome_message(body)


# --- recording: every path answers with a Recorded ----------------------------------------------------


def test_recording_a_message_over_http_or_from_the_queue_answers_the_same_shape(
    store: EventStore, tenant: TenantEvents
) -> None:
    sent = _envelope(tenantId=tenant.tenant_id)
    recorded = record_message(store, tenant.tenant_id, sent, "http")
    assert isinstance(recorded, Recorded)
    assert (recorded.tenant_id, recorded.stream_id) == (tenant.tenant_id, AUDIT_STREAM_ID)
    assert recorded.workflow_instance_id == CLAIM_INSTANCE_ID
    assert [e.event_id for e in recorded.events] == [UUID("7e7033bf-3e51-4df6-94d0-a51fc0f9afc3")]
    assert not recorded.result.repeated

    operation_id = uuid4()
    queued = record_queued_message(store, _envelope(tenantId=tenant.tenant_id, operationId=str(operation_id)))
    assert (queued.tenant_id, queued.stream_id, queued.workflow_instance_id) == (
        tenant.tenant_id,
        AUDIT_STREAM_ID,
        CLAIM_INSTANCE_ID,
    )
    assert [(e.event_id, e.source_system) for e in queued.events] == [(operation_id, "queue")]
    assert record_message(store, tenant.tenant_id, sent, "http").result.repeated


def test_recording_outcomes_over_http_or_from_the_queue_answers_the_same_shape(
    store: EventStore, tenant: TenantEvents
) -> None:
    first, second = uuid4(), uuid4()
    body = json.dumps({"eventId": str(first), "eventType": "StepStarted", "payload": {"step": 1}}).encode()
    recorded = record_outcomes(store, tenant.tenant_id, "i-1", body, "application/json")
    assert isinstance(recorded, Recorded)
    assert (recorded.tenant_id, recorded.stream_id, recorded.workflow_instance_id) == (
        tenant.tenant_id,
        instance_stream_id("i-1"),
        "i-1",
    )
    assert [e.event_id for e in recorded.events] == [first]
    assert recorded.result.version == 1

    message = {
        "tenantId": tenant.tenant_id,
        "workflowInstanceId": "i-1",
        "events": [{"eventId": str(second), "eventType": "StepCompleted", "payload": [1]}],
    }
    queued = record_queued_outcomes(store, json.dumps(message).encode())
    assert (queued.tenant_id, queued.stream_id, queued.workflow_instance_id) == (
        tenant.tenant_id,
        instance_stream_id("i-1"),
        "i-1",
    )
    assert [e.event_id for e in queued.events] == [second]
    assert (queued.result.version, queued.result.repeated) == (2, False)
