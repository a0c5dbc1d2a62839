"""Redaction of a value at JSON paths across event types (the suite's local host over HTTP, a real PostgreSQL
and Azurite). The value sits in a received message, instance events, a trace's step input, a large payload in
Blob storage and payloads archived to a cold segment (Cool, and Archive, which must be rehydrated first).
Afterwards it is nowhere but at a path the erasure did not name; every redacted payload keeps the rest of
its content, reads answer it verified against its new hash while the metadata keeps the original one, and
the archived originals are crypto-shredded; the same erasure asked again changes nothing."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import uuid4

import pytest
from psycopg import sql

from eventstore import EventStore, EventType, NewEvent, Settings, instance_stream_id
from eventstore.json_paths import JsonPath, JsonPathError, redact, redact_everywhere
from eventstore.retention.archiver import Archiver
from eventstore.retention.erasure import subject_digest
from eventstore.store import AUDIT_STREAM_ID, MAINTENANCE_STREAM_ID, is_cold
from eventstore.views import VIEWS, ViewRunner
from tests.helpers import random_tenant_id
from tests.http.client import HttpApi
from tests.retention.test_archiver import NOW, retention_settings
from tests.retention.test_erasure import OLD, _holding

EMAIL = "ana.redact@contoso.example"
OTHER = "someone.else@contoso.example"
PATHS = ["$.claimant", "$.trigger.parameters.email", "$.input.to", "$.newContext.email", "$.to", "$.input.cc[*]"]


def _event(kind: str, body: Any, instance: str) -> NewEvent:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return NewEvent(
        event_id=uuid4(), event_type=kind, payload=payload, workflow_id="claims", workflow_instance_id=instance
    )


def _record(store: EventStore, tenant_id: str, instance: str, email: str) -> list[NewEvent]:
    tenant = store.tenant(tenant_id)
    message = _event(
        EventType.TRIGGER_RECEIVED,
        {"trigger": {"parameters": {"email": email, "note": "keep me"}}, "claimant": email, "seen": email},
        instance,
    )
    tenant.append(AUDIT_STREAM_ID, [message])
    step = {"executionId": f"exec-{instance}", "stepId": f"s-{instance}", "name": "send-email", "attempt": 1}
    large = b'{"attachment": "' + b"x" * 300_000 + b'", "to": "' + email.encode() + b'"}'
    events = [
        _event(EventType.INSTANCE_CREATED, {"newState": "draft", "newContext": {"email": email}}, instance),
        _event(EventType.EXECUTION_STARTED, {"executionId": f"exec-{instance}"}, instance),
        _event(EventType.STEP_STARTED, {**step, "input": {"to": email, "cc": [email, "team@x.example"]}}, instance),
        _event(EventType.STATE_CHANGED, large, instance),
    ]
    tenant.append(instance_stream_id(instance), events)
    return [message, *events]


def _asked(*, dry_run: bool = False) -> bytes:
    value = {"value": EMAIL, "paths": PATHS}
    asked = {"subject": {"jsonValue": value}, "reason": "GDPR request 204", "requestedBy": "dpo", "dryRun": dry_run}
    return json.dumps(asked).encode()


def _reads_are_redacted(
    store: EventStore, api: HttpApi, tenant_id: str, events: list[NewEvent], erasure_id: str
) -> None:
    """Each event reads back redacted (verified against its new hash), but for the one that never held the value;
    the metadata keeps the hash of what was received and names the erasure."""
    tenant, marker = store.tenant(tenant_id), f"erased:{erasure_id}"
    for new in events:
        row = tenant.get_event(new.event_id)
        assert row is not None and row.payload_sha256 == hashlib.sha256(new.payload).digest()  # as received
        read = api.get(f"tenants/{tenant_id}/events/{new.event_id}")
        assert read.status == 200, read.body
        if new.event_type == EventType.EXECUTION_STARTED:
            assert read.body == new.payload and tenant.marks([row]) == {}  # it never held the value
            continue
        mark = tenant.marks([row])[row.event_id]
        assert str(mark.erasure_id) == erasure_id and mark.redacted_sha256 == hashlib.sha256(read.body).digest()
        assert tenant.payload_of(row) == read.body  # verified against the redacted hash, found by itself
        assert read.headers["etag"] == f'"{hashlib.sha256(read.body).hexdigest()}"'
        assert not is_cold(row.blob_ref) and marker.encode() in read.body
        body = json.loads(read.body)
        if new.event_type == EventType.TRIGGER_RECEIVED:
            assert body["trigger"]["parameters"] == {"email": marker, "note": "keep me"}
            assert body["seen"] == EMAIL  # not at a named path: redaction does only what it is asked
        if new.event_type == EventType.STEP_STARTED:
            assert body["input"]["cc"] == [marker, "team@x.example"]
        envelope = api.get(f"tenants/{tenant_id}/events/{new.event_id}?format=envelope").json()
        assert envelope["erasureId"] == erasure_id
        assert envelope["redactedSha256"] == hashlib.sha256(read.body).hexdigest()
        assert envelope["payloadSha256"] == hashlib.sha256(new.payload).hexdigest()


def test_a_value_is_redacted_at_its_paths_everywhere_and_the_rest_of_each_payload_stays(
    settings: Settings, azurite: Any, api_url: str
) -> None:
    config = retention_settings(settings, azurite)
    api = HttpApi(api_url)
    with EventStore(config, clock=lambda: OLD) as old, EventStore(config) as store:
        tenant_id = random_tenant_id()
        old.onboard_tenant(tenant_id)
        archived = _record(old, tenant_id, "claim-1", EMAIL)  # old: archived below
        recent = _record(store, tenant_id, "claim-2", EMAIL)
        others = _record(store, tenant_id, "claim-3", OTHER)
        ViewRunner(store, VIEWS).run_tenant(tenant_id)
        assert Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id).events == len(archived)
        tenant = store.tenant(tenant_id)
        large = tenant.get_event(recent[-1].event_id)
        payloads = store.payloads
        assert large is not None and large.blob_ref is not None and payloads is not None

        dry = api.post(f"tenants/{tenant_id}/erasures", _asked(dry_run=True))
        assert dry.status == 200, dry.body
        # Each of the two instances: the message, InstanceCreated, StepStarted and the large payload.
        assert (dry.json()["matched"], dry.json()["erased"], dry.json()["mode"]) == (8, 0, "redaction")
        assert _holding(store, tenant_id, EMAIL)  # nothing changed

        done = api.post(f"tenants/{tenant_id}/erasures", _asked())
        assert done.status == 201, done.body
        answer = done.json()
        erasure_id = answer["erasureId"]
        assert (answer["erased"], answer["pending"], answer["blobsDeleted"]) == (8, 0, 1)
        marker = f"erased:{erasure_id}"

        # The value is left only where no path named it ("seen"), in the two messages' rows.
        assert _holding(store, tenant_id, EMAIL) == {"events.payload": 2, "events.payload_json": 2}
        assert not payloads.exists(large.blob_ref)  # the original large payload's blob
        _reads_are_redacted(store, api, tenant_id, archived + recent, erasure_id)
        for new in others:  # another person's events are untouched
            kept = api.get(f"tenants/{tenant_id}/events/{new.event_id}")
            assert kept.status == 200 and kept.body == new.payload
        # The archived originals: their data keys are gone, so the segment's copies are noise.
        schema = tenant.placement.schema_name
        with store.pools.owner("default").connection() as conn:
            keys = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE erasure_id = %s AND archive_key IS NOT NULL").format(
                    sql.Identifier(schema, "events")
                ),
                (erasure_id,),
            ).fetchone()
        assert keys == (0,)
        [record] = [r for r in tenant.read_stream(MAINTENANCE_STREAM_ID) if r.event_type == EventType.PAYLOADS_ERASED]
        recorded = json.loads(record.payload or b"")
        assert str(record.event_id) == erasure_id and EMAIL.encode() not in (record.payload or b"")
        # Of the archived five, ExecutionStarted never held the value.
        assert (recorded["mode"], recorded["paths"], recorded["events"], recorded["archived"]) == (
            "redaction", PATHS, 8, 4
        )  # fmt: skip
        assert recorded["subject"]["sha256"] == subject_digest("jsonValue", EMAIL)

        again = api.post(f"tenants/{tenant_id}/erasures", _asked())
        assert again.status == 200 and (again.json()["erased"], again.json()["erasureId"]) == (0, None), again.body

        # The redacted old payloads are hot again: the next retention run archives them, and reads still verify.
        assert Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id).events == 4
        for new in archived:
            read = api.get(f"tenants/{tenant_id}/events/{new.event_id}")
            assert read.status == 200 and (new.event_type == EventType.EXECUTION_STARTED) != (
                marker.encode() in read.body
            ), read.body
        # Views rebuilt from the redacted log hold the value only where the log still does (nowhere in them).
        runner = ViewRunner(store, VIEWS)
        for view in ("instances", "executions"):
            rebuilt = runner.rebuild(tenant_id, view)
            assert rebuilt.stopped is None and rebuilt.error is None, rebuilt
        assert _holding(store, tenant_id, EMAIL) == {"events.payload": 1, "events.payload_json": 1}


def test_archive_tier_payloads_are_pending_until_rehydrated_then_the_same_erasure_redacts_them(
    settings: Settings, azurite: Any, api_url: str
) -> None:
    config = retention_settings(settings, azurite, retention_tier="Archive")
    api = HttpApi(api_url)
    with EventStore(config, clock=lambda: OLD) as old, EventStore(config) as store:
        tenant_id = random_tenant_id()
        old.onboard_tenant(tenant_id)
        archived = _record(old, tenant_id, "claim-1", EMAIL)
        assert Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id).events == len(archived)

        first = api.post(f"tenants/{tenant_id}/erasures", _asked())
        # Offline payloads cannot be looked into: their rehydration starts, and the answer says to come back.
        assert first.status == 202, first.body
        # Azurite rehydrates at once (Azure takes hours), so only the first read of each of the three segments
        # finds it offline: the message, ExecutionStarted and the large payload. The rest was redacted now.
        assert (first.json()["pending"], first.json()["erased"]) == (3, 2)
        assert first.headers["retry-after"] == "3600" and first.json()["retryAfterSeconds"] == 3600
        assert first.headers["location"].endswith(f"/events/{first.json()['erasureId']}")
        # The same erasure asked again reads them, now back online, and redacts the message.
        second = api.post(f"tenants/{tenant_id}/erasures", _asked())
        assert second.status == 201, second.body
        assert (second.json()["erased"], second.json()["pending"]) == (2, 0)
        assert _holding(store, tenant_id, EMAIL) == {"events.payload": 1, "events.payload_json": 1}


def test_bad_json_value_subjects_are_refused_naming_the_member(api_url: str, store: EventStore) -> None:
    api = HttpApi(api_url)
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    route = f"tenants/{tenant_id}/erasures"
    for subject, field in (
        ({"value": EMAIL, "paths": ["$.a", "$..b"]}, "subject.jsonValue.paths[1]"),
        ({"value": EMAIL, "paths": ["$"]}, "subject.jsonValue.paths[0]"),
        ({"value": EMAIL, "paths": []}, "subject.jsonValue.paths"),
        ({"value": "", "paths": ["$.a"]}, "subject.jsonValue.value"),
        ({"value": EMAIL, "paths": ["$.a"], "eventTypes": ["Nope"]}, "subject.jsonValue.eventTypes[0]"),
        ({"value": 5, "paths": ["$.a"]}, "subject.jsonValue.value"),
        ({"paths": ["$.a"]}, "subject.jsonValue.value"),
        ({"value": "a\u0000b", "paths": ["$.a"]}, "subject.jsonValue.value"),  # no JSONB copy could hold it
        ({"value": EMAIL, "paths": ['$["\\u0000"]']}, "subject.jsonValue.paths[0]"),
        ({"value": EMAIL, "paths": ['$["\\ud800"]']}, "subject.jsonValue.paths[0]"),
    ):
        body = {"subject": {"jsonValue": subject}, "reason": "r", "requestedBy": "x"}
        answer = api.post(route, json.dumps(body).encode())
        assert answer.status == 400 and answer.json()["field"] == field, (subject, answer.body)
    two = {"userId": "u", "jsonValue": {"value": "v", "paths": ["$.a"]}}
    both = {"subject": two, "reason": "r", "requestedBy": "x"}
    assert api.post(route, json.dumps(both).encode()).json()["field"] == "subject"


@pytest.mark.parametrize(
    ("path", "document", "expected"),
    [
        ("$.a.b", {"a": {"b": "v", "c": "v"}}, {"a": {"b": "M", "c": "v"}}),
        ('$["e-mail address"]', {"e-mail address": "v"}, {"e-mail address": "M"}),
        ("$.a[1]", {"a": ["v", "v"]}, {"a": ["v", "M"]}),
        ("$.a[*].b", {"a": [{"b": "v"}, {"b": "w"}, "v"]}, {"a": [{"b": "M"}, {"b": "w"}, "v"]}),
        ("$.a.*", {"a": {"x": "v", "y": ["v"]}}, {"a": {"x": "M", "y": ["v"]}}),
        ("$.a", {"a": {"v": 1}}, {"a": {"v": 1}}),  # only a string equal to the value is replaced
        ("$.a.b", {"a": [{"b": "v"}]}, {"a": [{"b": "v"}]}),  # strict: no array is unwrapped unasked
    ],
)
def test_paths_replace_exactly_what_they_name(path: str, document: Any, expected: Any) -> None:
    assert redact(document, JsonPath.parse(path), "v", "M")[0] == expected


@pytest.mark.parametrize("path", ["", "a.b", "$", "$..a", "$.a[-1]", "$.a[?(@.b)]", "$.1a", "$.a b", '$["a]'])
def test_paths_that_could_mean_more_than_they_say_are_refused(path: str) -> None:
    with pytest.raises(JsonPathError):
        JsonPath.parse(path)


def test_postgres_finds_every_payload_python_redacts(store: EventStore) -> None:
    """The jsonpaths sent to PostgreSQL (lax, for the index) find at least what Python then redacts, for values
    and names that need escaping."""
    value = 'O\'Brien "the" \\ ünïcode ☃'
    cases = [
        ('$["we\'ird \\"name\\""].x', {'we\'ird "name"': {"x": value}}),
        ("$.a[*]", {"a": [1, value]}),
        ("$.a.*", {"a": {"k": value}}),
        ("$.a[0].b", {"a": [{"b": value}]}),
    ]
    with store.pools.owner("default").connection() as conn:
        for text, document in cases:
            path = JsonPath.parse(text)
            assert redact(json.loads(json.dumps(document)), path, value, "M")[1] == 1
            found = conn.execute(
                "SELECT bool_or(%s::jsonb @? p::jsonpath) FROM unnest(%s::text[]) AS p",
                (json.dumps(document), path.postgres_filters(value)),
            ).fetchone()
            assert found == (True,), (text, path.postgres_filters(value))


def test_views_copies_are_redacted_wherever_the_value_is() -> None:
    document = {"a": ["v", {"b": "v", "c": "w"}], "v": "x"}
    assert redact_everywhere(document, "v", "M") == ({"a": ["M", {"b": "M", "c": "w"}], "v": "x"}, 2)
