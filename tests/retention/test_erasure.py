"""Erasure end to end (the suite's local host over HTTP, a real PostgreSQL and Azurite): a subject whose
data is in received messages, instance events, a large payload in Blob storage, an archived cold segment and
a trace is erased; afterwards every place is searched for the erased values and none holds them, while the
rows, their metadata and original hashes stay; reads answer 410 naming the erasure; the same erasure asked
again erases nothing more; views rebuilt from the log leave the erased events out instead of stopping."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from psycopg import sql

from eventstore import EventStore, EventType, NewEvent, Settings, instance_stream_id
from eventstore.retention.archiver import Archiver
from eventstore.retention.erasure import subject_digest
from eventstore.store import AUDIT_STREAM_ID, MAINTENANCE_STREAM_ID, NewQueueDeadLetter
from eventstore.views import VIEWS, ViewRunner
from tests.helpers import random_tenant_id
from tests.http.client import HttpApi
from tests.retention.test_archiver import NOW, retention_settings

EMAIL = "jane.doe.erasure@contoso.example"
OLD = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


def _new(kind: str, body: Any, instance: str, **fields: Any) -> NewEvent:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return NewEvent(
        event_id=uuid4(), event_type=kind, payload=payload,
        workflow_id="claims", workflow_instance_id=instance, **fields,
    )  # fmt: skip


def _record(store: EventStore, tenant_id: str, instance: str, email: str) -> list[NewEvent]:
    tenant = store.tenant(tenant_id)
    message = _new(EventType.TRIGGER_RECEIVED, {"trigger": {"triggerName": "Submit"}, "claimant": email}, instance)
    tenant.append(AUDIT_STREAM_ID, [message])
    step = {"executionId": f"exec-{instance}", "stepId": f"s-{instance}", "name": "send-email", "attempt": 1}
    large = b'{"attachment": "' + b"x" * 300_000 + b'", "to": "' + email.encode() + b'"}'
    events = [
        _new(EventType.INSTANCE_CREATED, {"newState": "draft", "newContext": {"email": email}}, instance),
        _new(EventType.EXECUTION_STARTED, {"executionId": f"exec-{instance}"}, instance),
        _new(EventType.STEP_STARTED, {**step, "input": {"to": email}}, instance),
        _new(EventType.STEP_FAILED, {**step, "error": {"message": f"mailbox {email} is full"}}, instance),
        _new(EventType.STATE_CHANGED, large, instance),
    ]
    tenant.append(instance_stream_id(instance), events)
    return [message, *events]


def _dead_letter(store: EventStore, tenant_id: str, instance: str) -> bytes:
    """A message for the instance that the host gave up on, kept as a dead letter of the ingest queue."""
    body = json.dumps({"tenantId": tenant_id, "claimant": EMAIL, "workflowInstanceId": instance}).encode()
    letter = NewQueueDeadLetter(
        queue="workflow-messages-poison", message_id=str(uuid4()), body=body, base64=True, tenant_id=tenant_id,
        message_type="Submit", workflow_id="claims", reason="test", dequeue_count=1, queued_at=None,
    )  # fmt: skip
    store.queue_dead_letters().record(letter, [])
    return body


def _keys_left(store: EventStore, tenant_id: str, erasure_id: str) -> tuple[int, int]:
    """(erased rows still holding a data key, erased rows) of the erasure."""
    schema = store.tenant(tenant_id).placement.schema_name
    with store.pools.owner("default").connection() as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*) FILTER (WHERE archive_key IS NOT NULL), count(*) FROM {} WHERE erasure_id = %s"
            ).format(sql.Identifier(schema, "events")),
            (erasure_id,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _holding(store: EventStore, tenant_id: str, value: str) -> dict[str, int]:
    """Every place in the tenant's schema that holds `value`: table.column -> rows."""
    schema = store.tenant(tenant_id).placement.schema_name
    places = {
        "events": ["payload", "payload_json"],
        "view_instances": ["context", "last_error"],
        "view_trace_events": ["data", "error"],
        "view_trace_steps": ["input", "output", "error", "attempt_history"],
        "view_trace_executions": ["error"],
        "view_trace_unplaced": ["detail"],
    }
    found = {}
    with store.pools.owner("default").connection() as conn:
        for name, columns in places.items():
            for column in columns:
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE position(%s in convert_to({}::text, 'UTF8')) > 0").format(
                        sql.Identifier(schema, name),
                        sql.SQL("convert_from({}, 'UTF8')").format(sql.Identifier(column))
                        if column == "payload"
                        else sql.Identifier(column),
                    ),
                    (value.encode(),),
                ).fetchone()
                if row and row[0]:
                    found[f"{name}.{column}"] = int(row[0])
    return found


def test_a_subject_is_erased_everywhere_its_data_lives_and_reads_say_so(
    settings: Settings, azurite: Any, api_url: str
) -> None:
    config = retention_settings(settings, azurite)
    api = HttpApi(api_url)
    with EventStore(config, clock=lambda: OLD) as old, EventStore(config) as store:
        tenant_id = random_tenant_id()
        old.onboard_tenant(tenant_id)
        archived = _record(old, tenant_id, "claim-7", EMAIL)  # old: archived below
        recent = _record(store, tenant_id, "claim-7", EMAIL)  # recent: in the rows and in Blob storage
        other = _record(store, tenant_id, "claim-8", "someone.else@contoso.example")
        poisoned = _dead_letter(store, tenant_id, "claim-7")
        ViewRunner(store, VIEWS).run_tenant(tenant_id)
        assert Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id).events == len(archived)
        assert _holding(store, tenant_id, EMAIL)  # the rows, the views (and the cold segment, sealed)
        large = store.tenant(tenant_id).get_event(recent[-1].event_id)
        assert large is not None and large.blob_ref is not None
        payloads = store.payloads
        assert payloads is not None and payloads.exists(large.blob_ref)

        asked = {"subject": {"workflowInstanceId": "claim-7"}, "reason": "GDPR request 117", "requestedBy": "dpo"}
        dry = api.post(f"tenants/{tenant_id}/erasures", json.dumps({**asked, "dryRun": True}).encode())
        assert dry.status == 200, dry.body
        assert (dry.json()["matched"], dry.json()["erased"], dry.json()["erasureId"]) == (12, 0, None)
        done = api.post(f"tenants/{tenant_id}/erasures", json.dumps(asked).encode())
        assert done.status == 201, done.body
        answer = done.json()
        assert (answer["matched"], answer["erased"], answer["blobsDeleted"], answer["deadLetters"]) == (12, 12, 1, 1)
        [letter] = store.queue_dead_letters().list(tenant_id=tenant_id)
        assert (letter.body, str(letter.erasure_id)) == (b"", answer["erasureId"])  # its hash stays
        assert letter.body_sha256 == hashlib.sha256(poisoned).digest()
        erasure_id = answer["erasureId"]
        assert done.headers["location"].endswith(f"/events/{erasure_id}")

        # Nowhere does the value remain: rows, JSONB copies, views; the blob is gone; the cold copies are noise.
        assert _holding(store, tenant_id, EMAIL) == {}
        assert not payloads.exists(large.blob_ref)
        assert _keys_left(store, tenant_id, erasure_id) == (0, 12)  # the archived ones' data keys are destroyed
        tenant = store.tenant(tenant_id)
        for new in archived + recent:
            gone = api.get(f"tenants/{tenant_id}/events/{new.event_id}")
            assert gone.status == 410 and gone.json()["erasureId"] == erasure_id, gone.body
            assert gone.json()["reason"] == "GDPR request 117"
            row = tenant.get_event(new.event_id)
            assert row is not None and row.payload_size == len(new.payload)  # the metadata stays
        assert api.get(f"tenants/{tenant_id}/instances/claim-7/state").status == 410
        for new in other:  # the other instance is untouched
            kept = api.get(f"tenants/{tenant_id}/events/{new.event_id}")
            assert kept.status == 200 and kept.body == new.payload
        [record] = [r for r in tenant.read_stream(MAINTENANCE_STREAM_ID) if r.event_type == EventType.PAYLOADS_ERASED]
        assert str(record.event_id) == erasure_id and EMAIL.encode() not in (record.payload or b"")
        assert json.loads(record.payload or b"")["subject"]["sha256"] == subject_digest("workflowInstance", "claim-7")

        again = api.post(f"tenants/{tenant_id}/erasures", json.dumps(asked).encode())
        assert again.status == 200 and (again.json()["erased"], again.json()["alreadyErased"]) == (0, 12)

        # A view rebuilt from the log leaves the erased events out instead of stopping at them.
        runner = ViewRunner(store, VIEWS)
        for view in ("instances", "executions"):
            rebuilt = runner.rebuild(tenant_id, view)
            assert rebuilt.stopped is None and rebuilt.error is None, rebuilt
        assert _holding(store, tenant_id, EMAIL) == {}


def test_bad_erasure_requests_are_refused_naming_the_member(api_url: str, store: EventStore) -> None:
    api = HttpApi(api_url)
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    route = f"tenants/{tenant_id}/erasures"
    both = {"subject": {"workflowInstanceId": "a", "userId": "b"}, "reason": "r", "requestedBy": "x"}
    for body, field in (
        ({"subject": {}, "reason": "r", "requestedBy": "x"}, "subject"),
        (both, "subject"),
        ({"subject": {"userId": "u"}, "requestedBy": "x"}, "reason"),
        ({"subject": {"userId": "u"}, "reason": "r"}, "requestedBy"),
        ({"subject": {"userId": "u"}, "reason": "r", "requestedBy": "x", "dryRun": "yes"}, "dryRun"),
        ({"subject": {"workflowInstanceId": "a", "userId": None}, "reason": "r", "requestedBy": "x"}, "subject.userId"),
    ):
        answer = api.post(route, json.dumps(body).encode())
        assert answer.status == 400 and answer.json()["field"] == field, (body, answer.body)
    assert api.post(f"tenants/{random_tenant_id()}/erasures", json.dumps(both).encode()).status in (400, 404)
