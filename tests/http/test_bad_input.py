"""Bad input over real HTTP: every refusal is a 4xx problem naming the parameter as the client sent it and
the limit that applies, and stores nothing (issue 8's reproductions, one test each)."""

from __future__ import annotations

import base64
import http.client
import json
from urllib.parse import quote, urlsplit
from uuid import uuid4

import pytest

from eventstore import AUDIT_STREAM_ID, EventStore, instance_stream_id
from eventstore.errors import InvalidInput
from eventstore.ingest import parse_outcome_message
from eventstore.payload_json import MAX_JSON_DEPTH
from tests.helpers import event
from tests.http.client import (
    Api,
    Response,
    assert_problem,
    cloudevent,
    envelope,
    native,
    versions,
)


def raw_get(api_url: str, target: str) -> Response:
    """A GET whose target is sent exactly as given (no encoding, no normalisation)."""
    parts = urlsplit(api_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    try:
        conn.request("GET", parts.path + "/" + target)
        answer = conn.getresponse()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
    finally:
        conn.close()


# --- 1. NUL bytes and forged continuation tokens ------------------------------------------------------


def test_a_nul_byte_in_a_query_value_or_path_segment_is_400_naming_it(api_url: str, tenant_id: str) -> None:
    base = f"tenants/{tenant_id}"
    assert_problem(raw_get(api_url, f"{base}/audit?workflowId=a%00b"), 400, field="workflowId")
    assert_problem(raw_get(api_url, f"{base}/audit?instanceId=a%00b"), 400, field="instanceId")
    assert_problem(raw_get(api_url, f"{base}/audit?eventType=Error%00"), 400, field="eventType")
    assert_problem(raw_get(api_url, f"{base}/instances/a%00b/state"), 400, field="instanceId")
    assert_problem(raw_get(api_url, f"{base}/instances/a%00b/events"), 400, field="instanceId")
    assert_problem(raw_get(api_url, f"{base}/instances?status=faulted%00"), 400, field="status")


def _forged(token: str, position: object) -> str:
    """`token` with its position replaced (what a client could do to an unsigned token)."""
    body, _, signature = token.partition(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["p"] = position
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{forged}.{signature}" if signature else forged


def test_continuation_tokens_are_tamper_evident(api: Api, tenant_id: str) -> None:
    for instance in ("a", "b", "c"):
        assert api.post(f"tenants/{tenant_id}/instances/{instance}/events", native()).status == 201
    token = api.get(f"tenants/{tenant_id}/instances", limit="1").json()["continuation"]
    assert token and api.get(f"tenants/{tenant_id}/instances", limit="1", continuation=token).status == 200
    for position in ("a\x00b", "b", 5, None):
        forged = _forged(token, position)
        answer = api.get(f"tenants/{tenant_id}/instances", continuation=forged)
        assert_problem(answer, 400, field="continuation")
    # A token that is well signed but not for this list is still refused.
    history = api.get(f"tenants/{tenant_id}/instances/a/events", limit="1")
    assert history.status == 200
    # A token whose signature was cut off, or flipped.
    assert_problem(api.get(f"tenants/{tenant_id}/instances", continuation=token.partition(".")[0]), 400)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert_problem(api.get(f"tenants/{tenant_id}/instances", continuation=flipped), 400, field="continuation")


# --- 4. error texts name the parameter as sent and the limit that applies -------------------------------


def test_a_body_over_the_limit_names_the_setting(api: Api, tenant_id: str) -> None:
    from eventstore import Settings

    limit = int(Settings.model_fields["max_payload_size"].default)
    answer = api.post(f"tenants/{tenant_id}/messages", b" " * (limit + 1))
    problem = assert_problem(answer, 413, field="body", limit=limit)
    assert "EVENTSTORE_MAX_PAYLOAD_SIZE" in problem["detail"] and "inline" not in problem["detail"]


def test_numbers_out_of_range_name_the_parameter_and_its_real_range(api: Api, tenant_id: str) -> None:
    assert api.post(f"tenants/{tenant_id}/instances/i/events", native()).status == 201
    history = f"tenants/{tenant_id}/instances/i/events"
    problem = assert_problem(api.get(history, fromSequence="9223372036854775807"), 400, field="fromSequence")
    assert "fromSequence" in problem["detail"] and "between 1 and" in problem["detail"]
    assert "from_sequence" not in problem["detail"]
    problem = assert_problem(api.get(history, limit="100000"), 400, field="limit")
    assert "between 1 and 1000" in problem["detail"]
    problem = assert_problem(api.get(f"tenants/{tenant_id}/instances/i/state", atSequence="-1"), 400)
    assert problem["field"] == "atSequence" and "atSequence" in problem["detail"]


def test_a_repeated_query_parameter_is_refused_by_name(api_url: str, tenant_id: str) -> None:
    answer = raw_get(api_url, f"tenants/{tenant_id}/audit?limit=1&limit=2")
    problem = assert_problem(answer, 400, field="limit")
    assert "more than once" in problem["detail"]


@pytest.mark.parametrize("bad", ["a\r\nb", "a\nb", "a\x00b", "a\tb", "a\x7fb"])
def test_an_instance_id_with_control_characters_is_400_naming_the_route_parameter(
    api: Api, tenant_id: str, store: EventStore, bad: str
) -> None:
    path = f"tenants/{tenant_id}/instances/{quote(bad, safe='')}"
    problem = assert_problem(api.post(f"{path}/events", native()), 400, field="instanceId")
    assert "stream_id" not in problem["detail"] and "workflow_instance_id" not in problem["detail"]
    assert_problem(api.get(f"{path}/state"), 400, field="instanceId")
    assert_problem(api.get(f"{path}/events"), 400, field="instanceId")


def test_an_instance_id_with_control_characters_in_a_message_names_its_member(
    api: Api, tenant_id: str, store: EventStore
) -> None:
    body = envelope(tenant_id, "envelope-start-request.json")
    document = json.loads(body)
    document["startWorkflowInstanceRequest"]["workflowInstanceId"] = "x\r\ny"
    answer = api.post(f"tenants/{tenant_id}/messages", json.dumps(document).encode())
    assert_problem(answer, 400, field="startWorkflowInstanceRequest.workflowInstanceId")
    assert versions(store, tenant_id, AUDIT_STREAM_ID) == [0]


def test_json_nested_past_the_documented_depth_says_so(api: Api, tenant_id: str, store: EventStore) -> None:
    deep_ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert api.post(f"tenants/{tenant_id}/instances/d/events", native(payload=deep_ok)).status == 201
    for depth in (MAX_JSON_DEPTH + 1, 990, 5000):
        too_deep = b"[" * depth + b"]" * depth
        answer = api.post(f"tenants/{tenant_id}/instances/e/events", native(payload=too_deep))
        problem = assert_problem(answer, 400)
        assert f"{MAX_JSON_DEPTH} levels" in problem["detail"], problem
        assert "not valid JSON" not in problem["detail"]
    assert versions(store, tenant_id, instance_stream_id("e")) == [0]
    page = api.get(f"tenants/{tenant_id}/instances/d/events").json()  # the stored one reads back as JSON
    assert page["events"][0]["payload"] == json.loads(deep_ok)


def test_the_depth_limit_is_the_same_for_every_shape_a_payload_arrives_in(
    api: Api, tenant_id: str, store: EventStore
) -> None:
    deep_ok = json.loads(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    too_deep = json.loads(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    path = f"tenants/{tenant_id}/instances/ce/events"
    kind = "application/cloudevents+json"
    answer = api.post(path, json.dumps(cloudevent(tenant_id, subject="ce", data=too_deep)).encode(), kind)
    problem = assert_problem(answer, 400, field="data")
    assert f"{MAX_JSON_DEPTH} levels" in problem["detail"]
    assert versions(store, tenant_id, instance_stream_id("ce")) == [0]
    answer = api.post(path, json.dumps(cloudevent(tenant_id, subject="ce", data=deep_ok)).encode(), kind)
    assert answer.status == 201, answer.body
    stored = api.get(f"tenants/{tenant_id}/instances/ce/events").json()["events"][0]
    assert stored["payload"]["data"] == deep_ok  # the whole CloudEvent, one level deeper, still inline
    # A queued outcome message wraps its payloads three levels down: the same 512 levels pass.
    message = {"tenantId": tenant_id, "workflowInstanceId": "q", "events": [
        {"eventId": str(uuid4()), "eventType": "StepCompleted", "payload": deep_ok}]}  # fmt: skip
    assert parse_outcome_message(json.dumps(message).encode()).events[0].payload == json.dumps(deep_ok).encode()
    message["events"][0]["payload"] = too_deep  # type: ignore[index]
    with pytest.raises(InvalidInput, match=f"{MAX_JSON_DEPTH} levels"):
        parse_outcome_message(json.dumps(message).encode())


# --- 5. what the OpenAPI document says is what the API does --------------------------------------------


def test_times_must_be_rfc3339_not_unix_numbers(api: Api, tenant_id: str) -> None:
    for bad in ("0.5", "1700000000", "2024-01-10", "2024-01-10T00:00:00"):
        assert_problem(api.get(f"tenants/{tenant_id}/audit", to=bad), 400, field="to")
        assert_problem(api.get(f"tenants/{tenant_id}/audit", **{"from": bad}), 400, field="from")
    assert api.get(f"tenants/{tenant_id}/audit", to="2024-01-10T00:00:00Z").status == 200
    assert api.get(f"tenants/{tenant_id}/audit", to="2024-01-10T00:00:00.5+02:00").status == 200


def test_an_empty_event_type_is_refused_in_the_body_and_ignored_nowhere(api: Api, tenant_id: str) -> None:
    answer = api.post(f"tenants/{tenant_id}/instances/i/events", native(event_type=""))
    assert_problem(answer, 400, field="eventType")
    assert_problem(api.get(f"tenants/{tenant_id}/audit", eventType=""), 400, field="eventType")
    assert_problem(api.get(f"tenants/{tenant_id}/audit", eventType="Error,,"), 400, field="eventType")


# --- 6. instance ids that are path segments of their own --------------------------------------------------


@pytest.mark.parametrize("segment", [".", "..", "%2E", "%2e%2E"])
def test_dot_segments_are_not_instance_ids(api_url: str, api: Api, tenant_id: str, segment: str) -> None:
    answer = api.post(f"tenants/{tenant_id}/instances/{segment}/events", native())
    assert answer.status in (400, 404), answer.body
    assert answer.headers.get("location") is None
    if answer.status == 400:
        assert_problem(answer, 400, field="instanceId")


def test_every_location_round_trips_to_its_resource(api: Api, tenant_id: str) -> None:
    for instance in ("a/b", "a b", "ü", "?x", "#", "%2E", "...", ".a"):
        answer = api.post(f"tenants/{tenant_id}/instances/{quote(instance, safe='')}/events", native())
        assert answer.status == 201, (instance, answer.body)
        location = urlsplit(answer.headers["location"])
        assert location.path.startswith("/api/") and "/./" not in location.path and "/../" not in location.path
        again = api.get(location.path.removeprefix("/api/") + "?" + location.query)
        assert again.status == 200 and again.json()["workflowInstanceId"] == instance


# --- 7. every page parses with common clients -----------------------------------------------------------


def test_a_payload_no_common_parser_reads_is_returned_as_its_exact_text(
    api: Api, tenant_id: str, store: EventStore
) -> None:
    huge = b'{"n": ' + b"7" * 5000 + b', "s": "' + b"1" * 5000 + b'"}'
    ordinary = b'{"n":  12}'
    ids = []
    for payload in (huge, ordinary):
        answer = api.post(f"tenants/{tenant_id}/instances/h/events", native(payload=payload))
        assert answer.status == 201, answer.body
        ids.append(answer.json()["eventIds"][0])
    for page_path in (f"tenants/{tenant_id}/instances/h/events", f"tenants/{tenant_id}/audit"):
        page = json.loads(api.get(page_path).body)  # Python's json refuses ints over 4,300 digits
        first, second = page["events"]
        assert first["payloadText"] == huge.decode() and "payload" not in first
        assert second["payload"] == {"n": 12} and "payloadText" not in second
    envelope_answer = api.get(f"tenants/{tenant_id}/events/{ids[0]}", format="envelope")
    assert json.loads(envelope_answer.body)["payloadText"] == huge.decode()
    assert api.get(f"tenants/{tenant_id}/events/{ids[0]}").body == huge
    # Deeper than Python's json goes: only the Python API can store it (ingest stops at 512 levels).
    deep = b"[" * 2000 + b"]" * 2000
    store.tenant(tenant_id).append(instance_stream_id("deep"), [event(deep)])
    (item,) = json.loads(api.get(f"tenants/{tenant_id}/instances/deep/events").body)["events"]
    assert item["payloadText"] == deep.decode() and "payload" not in item


def test_refused_requests_in_this_file_store_nothing(api: Api, tenant_id: str, store: EventStore) -> None:
    bad = [
        api.post(f"tenants/{tenant_id}/instances/{quote('x' + chr(0), safe='')}/events", native()),
        api.post(f"tenants/{tenant_id}/instances/z/events", native(event_type="")),
        api.post(f"tenants/{tenant_id}/messages", envelope(tenant_id, operationId=str(uuid4()) + "\x00")),
    ]
    assert all(400 <= answer.status < 500 for answer in bad), [a.body for a in bad]
    assert versions(store, tenant_id, AUDIT_STREAM_ID, instance_stream_id("z")) == [0, 0]


def test_a_short_token_key_stops_the_settings_from_loading() -> None:
    from pydantic import SecretStr, ValidationError

    from eventstore import Settings

    with pytest.raises(ValidationError, match="EVENTSTORE_CONTINUATION_KEY must be at least 16 bytes"):
        Settings(continuation_key=SecretStr("short"))
    assert Settings(continuation_key=SecretStr("sixteen-bytes-ok")).continuation_key.get_secret_value()
