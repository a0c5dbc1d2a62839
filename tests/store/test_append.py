from __future__ import annotations

import hashlib
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from eventstore import (
    ConcurrencyConflict,
    DuplicateEventId,
    EventStore,
    EventType,
    InvalidInput,
    NewEvent,
    PayloadTooLarge,
    Settings,
    StreamState,
    TenantEvents,
)
from eventstore.store.append_events import COPY_THRESHOLD
from tests.helpers import event, random_tenant_id


def count_rows(conn: psycopg.Connection[tuple[Any, ...]], tenant: TenantEvents, table: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(tenant.placement.schema_name, table))
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_append_returns_positions_and_reads_back_in_order(tenant: TenantEvents) -> None:
    batch = [
        event(
            {"n": i},
            workflow_id="wf",
            workflow_instance_id="i1",
            user_id="u",
            correlation_id="c",
            causation_id="k",
            source_system="engine",
        )
        for i in range(5)
    ]
    result = tenant.append("instance:i1", batch)
    assert result.sequence_numbers == (1, 2, 3, 4, 5)
    assert list(result.global_positions) == sorted(result.global_positions)
    assert not result.repeated and result.version == 5
    read = tenant.read_stream("instance:i1")
    assert [e.event_id for e in read] == [e.event_id for e in batch]
    assert [e.sequence_number for e in read] == [1, 2, 3, 4, 5]
    assert [e.global_position for e in read] == list(result.global_positions)
    first = read[0]
    assert first.payload == batch[0].payload
    assert first.payload_sha256 == hashlib.sha256(batch[0].payload).digest()
    assert first.payload_size == len(batch[0].payload)
    assert (
        first.workflow_id,
        first.workflow_instance_id,
        first.user_id,
        first.correlation_id,
        first.causation_id,
        first.source_system,
    ) == ("wf", "i1", "u", "c", "k", "engine")
    assert first.event_type == EventType.STEP_COMPLETED
    assert tenant.stream_version("instance:i1") == 5


def test_read_forwards_backwards_from_and_limit(tenant: TenantEvents) -> None:
    tenant.append("s", [event({"n": i}) for i in range(10)])
    assert [e.sequence_number for e in tenant.read_stream("s", 4, limit=3)] == [4, 5, 6]
    assert [e.sequence_number for e in tenant.read_stream("s", backwards=True, limit=3)] == [10, 9, 8]
    assert [e.sequence_number for e in tenant.read_stream("s", 4, backwards=True)] == [4, 3, 2, 1]
    assert tenant.read_stream("s", 11) == []
    assert tenant.read_stream("missing") == []
    with pytest.raises(InvalidInput):
        tenant.read_stream("s", limit=0)


@pytest.mark.parametrize(
    ("expected", "ok_when_absent", "ok_when_at_2"),
    [
        (StreamState.ANY, True, True),
        (StreamState.NO_STREAM, True, False),
        (0, True, False),
        (StreamState.STREAM_EXISTS, False, True),
        (2, False, True),
        (1, False, False),
        (3, False, False),
    ],
)
def test_expected_version(
    tenant: TenantEvents, expected: StreamState | int, ok_when_absent: bool, ok_when_at_2: bool
) -> None:
    if ok_when_absent:
        assert tenant.append("absent", [event()], expected).sequence_numbers == (1,)
    else:
        with pytest.raises(ConcurrencyConflict) as caught:
            tenant.append("absent", [event()], expected)
        assert caught.value.actual_version == 0
        assert tenant.stream_version("absent") == 0
    tenant.append("at2", [event(), event()])
    if ok_when_at_2:
        assert tenant.append("at2", [event()], expected).sequence_numbers == (3,)
    else:
        with pytest.raises(ConcurrencyConflict) as caught:
            tenant.append("at2", [event()], expected)
        assert caught.value.actual_version == 2
        assert caught.value.stream_id == "at2"
        assert tenant.stream_version("at2") == 2


def test_bad_expected_version_is_refused(tenant: TenantEvents) -> None:
    for bad in (-1, True, "2", 1.5):
        with pytest.raises(InvalidInput):
            tenant.append("s", [event()], bad)  # type: ignore[arg-type]


def test_idempotent_repeat_returns_the_first_result(
    tenant: TenantEvents, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    batch = [event({"n": i}) for i in range(3)]
    first = tenant.append("s", batch, StreamState.NO_STREAM)
    tenant.append("s", [event()])
    for expected in (StreamState.NO_STREAM, StreamState.ANY, StreamState.STREAM_EXISTS, 0):
        again = tenant.append("s", batch, expected)
        assert again.repeated
        assert (again.sequence_numbers, again.global_positions) == (first.sequence_numbers, first.global_positions)
    assert count_rows(owner_conn, tenant, "events") == 4
    assert tenant.stream_version("s") == 4
    # A repeat whose expectation contradicts where the events are is a conflict, not a repeat.
    with pytest.raises(ConcurrencyConflict):
        tenant.append("s", batch, 2)


def test_same_id_other_content_or_place_is_an_error(
    tenant: TenantEvents, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    original = event({"n": 1})
    other = event({"n": 2})
    tenant.append("s", [original, other])
    changed = NewEvent(event_id=original.event_id, event_type=original.event_type, payload=b'{"n": 99}')
    with pytest.raises(DuplicateEventId, match="other content"):
        tenant.append("s", [changed, other])
    retyped = original.model_copy(update={"event_type": EventType.ERROR})
    with pytest.raises(DuplicateEventId, match="other content"):
        tenant.append("s", [retyped, other])
    with pytest.raises(DuplicateEventId, match="another stream"):
        tenant.append("elsewhere", [original])
    with pytest.raises(DuplicateEventId, match="another position"):
        tenant.append("s", [other, original])
    with pytest.raises(DuplicateEventId, match="other events of the same batch"):
        tenant.append("s", [original, other, event()])
    assert count_rows(owner_conn, tenant, "events") == 2
    assert tenant.stream_version("elsewhere") == 0


def test_bad_batches_write_nothing(
    tenant: TenantEvents, owner_conn: psycopg.Connection[tuple[Any, ...]], settings: Settings
) -> None:
    tenant.append("s", [event()])
    same = uuid4()
    cases: list[tuple[list[NewEvent], type[Exception]]] = [
        ([], InvalidInput),
        ([event(event_id=same), event(event_id=same)], DuplicateEventId),  # a conflict within the batch
        ([event(), event(b"\xff\xfe not json")], InvalidInput),
        ([event(), event(b'{"a": NaN}')], InvalidInput),
        ([event(), event(b'{"a": 1')], InvalidInput),
        ([event(), event(b"x" * (settings.inline_payload_limit + 1), content_type="text/plain")], PayloadTooLarge),
    ]
    for batch, error in cases:
        with pytest.raises(error):
            tenant.append("s", batch)
    with pytest.raises(InvalidInput):
        tenant.append("", [event()])
    with pytest.raises(InvalidInput):
        tenant.append("bad\nstream", [event()])
    assert count_rows(owner_conn, tenant, "events") == 1
    assert count_rows(owner_conn, tenant, "event_ids") == 1
    assert tenant.stream_version("s") == 1


def test_payload_limit_is_the_setting(store: EventStore, settings: Settings) -> None:
    small = EventStore(settings.model_copy(update={"inline_payload_limit": 10}))
    try:
        tenant_id = random_tenant_id()
        store.onboard_tenant(tenant_id)
        tenant = small.tenant(tenant_id)
        assert tenant.append("s", [event(b'{"a":1234}')]).version == 1
        with pytest.raises(PayloadTooLarge) as caught:
            tenant.append("s", [event(b'{"a":12345}')])
        assert (caught.value.size, caught.value.limit) == (11, 10)
    finally:
        small.close()


def test_batch_size_limit(tenant: TenantEvents, settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="at most"):
        tenant.append("s", [event() for _ in range(settings.max_batch_size + 1)])
    assert tenant.append("s", [event() for _ in range(settings.max_batch_size)]).version == settings.max_batch_size


def test_json_that_jsonb_cannot_hold_is_stored_exactly_without_a_copy(
    tenant: TenantEvents, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    payloads = [
        b'{"text": "nul \\u0000 here"}',
        b'["\\ud800 lone"]',
        b'{"ok": "\\\\u0000 is not a NUL"}',
        b'{"pair": "\\ud83d\\ude00"}',
        b"not json at all \x00\xff",
    ]
    types = ["application/json", "application/json", "application/json", "application/json", "application/octet-stream"]
    tenant.append("s", [event(p, content_type=t) for p, t in zip(payloads, types, strict=True)])
    assert [e.payload for e in tenant.read_stream("s")] == payloads
    copies = owner_conn.execute(
        sql.SQL("SELECT payload_json IS NOT NULL FROM {} ORDER BY sequence_number").format(
            sql.Identifier(tenant.placement.schema_name, "events")
        )
    ).fetchall()
    assert [c[0] for c in copies] == [False, False, True, True, False]


@pytest.mark.parametrize("size", [1, 2, COPY_THRESHOLD - 1, COPY_THRESHOLD, 50])
def test_every_batch_size_keeps_the_same_guarantees(
    tenant: TenantEvents, owner_conn: psycopg.Connection[tuple[Any, ...]], size: int
) -> None:
    """One event, a few, and many take three different paths: all must behave identically."""
    batch = [event({"n": n}) for n in range(size)]
    first = tenant.append("s", batch, StreamState.NO_STREAM)
    assert first.sequence_numbers == tuple(range(1, size + 1))
    assert list(first.global_positions) == sorted(first.global_positions)
    again = tenant.append("s", batch, StreamState.NO_STREAM)
    assert again.repeated and again.global_positions == first.global_positions
    with pytest.raises(ConcurrencyConflict) as caught:
        tenant.append("s", [event() for _ in range(size)], size - 1 if size > 1 else StreamState.NO_STREAM)
    assert caught.value.actual_version == size
    changed = [*batch[:-1], NewEvent(event_id=batch[-1].event_id, event_type="Error", payload=b"{}")]
    with pytest.raises(DuplicateEventId):
        tenant.append("s", changed)
    for bad in (b'{"a": NaN}', b"\xff\xfe", b"[1, 2"):
        with pytest.raises(InvalidInput):
            tenant.append("s", [*[event() for _ in range(size - 1)], event(bad)], size)
    odd = [event(b'{"nul": "\\u0000"}'), *[event(b'{"x" : 1 ,"x":2}') for _ in range(size - 1)]]
    result = tenant.append("s", odd, size)
    read = tenant.read_stream("s", size + 1)
    assert [e.payload for e in read] == [e.payload for e in odd]
    assert [e.global_position for e in read] == list(result.global_positions)
    assert count_rows(owner_conn, tenant, "events") == 2 * size
    assert count_rows(owner_conn, tenant, "event_ids") == 2 * size
    assert tenant.stream_version("s") == 2 * size


def test_ids_stored_elsewhere_in_the_same_stream_are_a_duplicate_not_a_conflict(tenant: TenantEvents) -> None:
    """The expectation holds (the stream is at 3), so a retry at a fresh version could never succeed:
    the caller must hear that the ids are the problem."""
    batch = [event(), event()]
    tenant.append("s", batch)
    tenant.append("s", [event()])
    for size in (1, 2):
        with pytest.raises(DuplicateEventId, match="another position"):
            tenant.append("s", batch[:size] if size == 1 else batch, 3)


def test_metadata_with_nul_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        NewEvent.parse({"event_id": str(uuid4()), "event_type": "Error", "payload": b"{}", "user_id": "a\x00b"})
    assert caught.value.field == "user_id"


def test_read_bounds_are_checked_before_the_database(tenant: TenantEvents) -> None:
    for kwargs in ({"limit": 2**63}, {"from_sequence": 2**63}, {"from_sequence": -1}):
        with pytest.raises(InvalidInput):
            tenant.read_stream("s", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        tenant.read_all(limit=2**63)
