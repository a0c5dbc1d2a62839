"""Payloads come back byte for byte, with their SHA-256; the JSONB copy only serves queries.

Property tests use a tenant and an owner connection of this module (hypothesis runs many examples per
test, which function-scoped fixtures would not survive); each example appends to a stream of its own.
The append has three paths by batch size (one event; 2 to `COPY_THRESHOLD - 1` in one VALUES statement;
`COPY_THRESHOLD` and more through a binary COPY): the properties run through each.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql

from eventstore import (
    START,
    Checkpoint,
    EventStore,
    EventType,
    InvalidInput,
    NewEvent,
    Settings,
    StreamState,
    TenantEvents,
)
from eventstore.store.append_events import COPY_THRESHOLD
from tests.helpers import event, feed_waiting, random_tenant_id

Connection = psycopg.Connection[tuple[Any, ...]]
JSON = "application/json"
OCTETS = "application/octet-stream"


@pytest.fixture(scope="module")
def module_tenant(store: EventStore) -> TenantEvents:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    return store.tenant(tenant_id)


@pytest.fixture(scope="module")
def module_owner_conn(database_url: str) -> Iterator[Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def new_event(payload: bytes, content_type: str) -> NewEvent:
    return NewEvent(event_id=uuid4(), event_type=EventType.STEP_COMPLETED, payload=payload, content_type=content_type)


def stored_json_copy(conn: Connection, tenant: TenantEvents, event_id: UUID) -> str | None:
    """The JSONB copy of an event as text (None when there is none), read as the owner."""
    row = conn.execute(
        sql.SQL("SELECT payload_json::text FROM {} WHERE event_id = %s").format(
            sql.Identifier(tenant.placement.schema_name, "events")
        ),
        (event_id,),
    ).fetchone()
    assert row is not None, f"event {event_id} is not stored"
    copy = row[0]
    assert copy is None or isinstance(copy, str)
    return copy


def append_and_read_back(tenant: TenantEvents, payload: bytes, content_type: str) -> UUID:
    """Append one event to a fresh stream and check the stored bytes, size, hash and content type."""
    new = new_event(payload, content_type)
    stream_id = f"instance:{uuid4()}"
    result = tenant.append(stream_id, [new], StreamState.NO_STREAM)
    assert result.sequence_numbers == (1,)
    [recorded] = tenant.read_stream(stream_id)
    assert recorded.event_id == new.event_id
    assert type(recorded.payload) is bytes
    assert recorded.payload == payload
    assert recorded.payload_size == len(payload)
    assert bytes(recorded.payload_sha256) == hashlib.sha256(payload).digest()
    assert recorded.content_type == content_type
    assert recorded.blob_ref is None
    return new.event_id


def append_batch_and_read_back(
    tenant: TenantEvents, conn: Connection, items: list[tuple[bytes, str]]
) -> list[tuple[bytes, str | None]]:
    """Append `items` (payload, content type) as one batch to a fresh stream, check each event as
    `append_and_read_back` does, and return each payload with its JSONB copy as text (None: no copy)."""
    batch = [new_event(payload, content_type) for payload, content_type in items]
    stream_id = f"instance:{uuid4()}"
    result = tenant.append(stream_id, batch, StreamState.NO_STREAM)
    assert result.sequence_numbers == tuple(range(1, len(batch) + 1))
    read = tenant.read_stream(stream_id)
    assert [e.event_id for e in read] == [e.event_id for e in batch]
    for recorded, new in zip(read, batch, strict=True):
        assert type(recorded.payload) is bytes
        assert recorded.payload == new.payload
        assert recorded.payload_size == len(new.payload)
        assert bytes(recorded.payload_sha256) == hashlib.sha256(new.payload).digest()
        assert recorded.content_type == new.content_type
    rows = conn.execute(
        sql.SQL("SELECT payload_json::text FROM {} WHERE stream_id = %s ORDER BY sequence_number").format(
            sql.Identifier(tenant.placement.schema_name, "events")
        ),
        (stream_id,),
    ).fetchall()
    assert len(rows) == len(batch)
    return [(new.payload, row[0]) for new, row in zip(batch, rows, strict=True)]


# Batch sizes of the two multi-event paths; each example fills its batch by repeating what it drew.
BATCH_PATHS = {
    "values": st.integers(2, COPY_THRESHOLD - 1),
    "copy": st.integers(COPY_THRESHOLD, COPY_THRESHOLD + 8),
}


# In every batch of the bytes property, whatever else is drawn: bytes a text or line-ending conversion,
# a trim, a NUL-terminated string or a UTF-8 decode would change.
AWKWARD_BYTES = [bytes(range(256)), b" \t\r\n", b"\x00", b"", b"\xef\xbb\xbf{}\r\n"]


def filled(drawn: list[Any], size: int) -> list[Any]:
    return [drawn[i % len(drawn)] for i in range(size)]


def last_checkpoint(store: EventStore, tenant: TenantEvents) -> Checkpoint:
    """After the tenant's last committed event. Waits while another session's open transaction (on a
    shared server) keeps events beyond the all-stream's horizon."""
    deadline = time.monotonic() + 30
    checkpoint = START
    feed = store.feed(tenant.tenant_id)
    while True:
        page = tenant.read_all(checkpoint, limit=10_000)
        checkpoint = page.next_checkpoint
        if not page.more and (not feed_waiting(feed, checkpoint) or time.monotonic() > deadline):
            return checkpoint
        if not page.events:
            time.sleep(0.01)


def holds_unrepresentable(value: Any) -> bool:
    """True if a string or key holds what JSONB cannot: NUL, or a surrogate code point (unpaired)."""
    if isinstance(value, str):
        return any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(holds_unrepresentable(v) for v in value)
    if isinstance(value, dict):
        return any(holds_unrepresentable(k) or holds_unrepresentable(v) for k, v in value.items())
    return False


def same_json(a: Any, b: Any) -> bool:
    """Equality of parsed JSON that tells true from 1 and compares numbers by value (JSONB keeps
    numbers as numeric, so 1e+16 comes back as 10000000000000000)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b) if isinstance(a, float) or isinstance(b, float) else a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# --- arbitrary bytes ------------------------------------------------------------------------------


@hypothesis_settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=4096))
def test_arbitrary_bytes_round_trip_exactly(
    module_tenant: TenantEvents, module_owner_conn: Connection, payload: bytes
) -> None:
    event_id = append_and_read_back(module_tenant, payload, OCTETS)
    assert stored_json_copy(module_owner_conn, module_tenant, event_id) is None


@pytest.mark.parametrize("path", list(BATCH_PATHS))
@hypothesis_settings(max_examples=20, deadline=None)
@given(data=st.data(), drawn=st.lists(st.binary(max_size=1024), min_size=1, max_size=6))
def test_arbitrary_bytes_round_trip_exactly_in_batches(
    module_tenant: TenantEvents, module_owner_conn: Connection, path: str, data: st.DataObject, drawn: list[bytes]
) -> None:
    size = data.draw(BATCH_PATHS[path], label="size")
    payloads = filled([*AWKWARD_BYTES, *drawn], size)
    stored = append_batch_and_read_back(module_tenant, module_owner_conn, [(p, OCTETS) for p in payloads])
    assert all(copy is None for _, copy in stored)


# --- arbitrary JSON documents, serialised every which way -------------------------------------------

_AWKWARD = st.sampled_from(
    [
        "\x00",
        "\ud800",
        "\udbff",
        "\udc00",
        "\udfff",
        "\ud83d\ude00",
        "\U0001f600",
        '"',
        "\\",
        "/",
        "\n",
        "\t",
        "\x1f",
        "\x7f",
        "\u2028",
        "\ufeff",
        "\uffff",
        "é",
        "a",
    ]
)
_TEXT = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(exclude_categories=()), max_size=12),  # surrogates included
    st.lists(_AWKWARD, max_size=5).map("".join),
)
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), _TEXT)
DOCUMENTS = st.recursive(
    _LEAVES,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_TEXT, children, max_size=5),
    max_leaves=25,
)
DUMP_OPTIONS = st.fixed_dictionaries(
    {
        "indent": st.sampled_from([None, 0, 2, 4, "\t"]),
        "ensure_ascii": st.booleans(),
        "separators": st.sampled_from(
            [None, (",", ":"), (", ", ": "), (" , ", " : "), (",\n", ":\t"), (",\r\n", ":  ")]
        ),
        "sort_keys": st.booleans(),
    }
)
_WHITESPACE = st.sampled_from(["", " ", "\n", "\r\n", "\t ", "  \n"])


def serialise(document: Any, options: dict[str, Any], before: str, after: str) -> bytes:
    text = json.dumps(document, **options)
    try:
        return (before + text + after).encode("utf-8")
    except UnicodeEncodeError:
        # ensure_ascii=False leaves a lone surrogate raw, and UTF-8 cannot encode it: escape it instead.
        return (before + json.dumps(document, **{**options, "ensure_ascii": True}) + after).encode("utf-8")


_UNKNOWN = object()


def check_json_copy(payload: bytes, copy: str | None, document: Any = _UNKNOWN) -> None:
    """The copy of a JSON payload is faithful, and absent exactly when JSONB cannot hold the document.

    With `document`: the bytes denote it, unless it held two surrogate code points that JSON reads back
    as one pair (Python strings may hold such halves; JSON text cannot)."""
    parsed = json.loads(payload)
    if document is not _UNKNOWN and not any(holds_unrepresentable(x) for x in (document, parsed)):
        assert same_json(parsed, document)
    if holds_unrepresentable(parsed):
        assert copy is None, "JSONB cannot hold NUL or a lone surrogate: there must be no copy"
    else:
        assert copy is not None, "a JSON payload JSONB can hold must get its JSONB copy"
        assert same_json(json.loads(copy), parsed), (copy, parsed)


@pytest.mark.slow
@hypothesis_settings(max_examples=200, deadline=None)
@given(document=DOCUMENTS, options=DUMP_OPTIONS, before=_WHITESPACE, after=_WHITESPACE)
def test_json_documents_round_trip_byte_exact_with_a_faithful_jsonb_copy(
    module_tenant: TenantEvents,
    module_owner_conn: Connection,
    document: Any,
    options: dict[str, Any],
    before: str,
    after: str,
) -> None:
    payload = serialise(document, options, before, after)
    event_id = append_and_read_back(module_tenant, payload, JSON)
    check_json_copy(payload, stored_json_copy(module_owner_conn, module_tenant, event_id), document)


@pytest.mark.parametrize("path", list(BATCH_PATHS))
@hypothesis_settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    drawn=st.lists(
        st.tuples(DOCUMENTS, DUMP_OPTIONS, _WHITESPACE, _WHITESPACE, st.sampled_from([JSON, OCTETS])),
        min_size=1,
        max_size=4,
    ),
)
def test_json_documents_round_trip_byte_exact_in_batches_with_faithful_copies(
    module_tenant: TenantEvents,
    module_owner_conn: Connection,
    path: str,
    data: st.DataObject,
    drawn: list[tuple[Any, dict[str, Any], str, str, str]],
) -> None:
    """Documents JSONB can and cannot hold, declared JSON or not, side by side in one batch: the bytes
    come back exactly, each JSON one with its own faithful copy (or none), octets never with one."""
    size = data.draw(BATCH_PATHS[path], label="size")
    items = filled(
        [(serialise(doc, options, before, after), kind) for doc, options, before, after, kind in drawn], size
    )
    stored = append_batch_and_read_back(module_tenant, module_owner_conn, items)
    for (payload, kind), (_, copy) in zip(items, stored, strict=True):
        if kind == JSON:
            check_json_copy(payload, copy)
        else:
            assert copy is None


@pytest.mark.parametrize(
    ("payload", "jsonb"),
    [
        (b'{"a":1,  "a" : 2}\n', {"a": 2}),
        (b'{"b":1,"a":[true,false,null],"b":{"z":0,"y":-0.0}}', {"a": [True, False, None], "b": {"y": 0, "z": 0}}),
        (b' \t\r\n[1 ,\n2 ,  "x"\t]\r\n ', [1, 2, "x"]),
        (b'"\\u00e9\\/\\ud83d\\ude00"', "\u00e9/\U0001f600"),
        (b'{"n":1.50,"m":1E2,"k":-0}', {"n": 1.5, "m": 100, "k": 0}),
        (b'{"nul":"\\u0000","a":1,"a":2}', None),
        (b'["\\ud800"]', None),
    ],
    ids=["duplicate-keys", "reordered-keys", "odd-whitespace", "escapes", "number-spellings", "nul", "lone-surrogate"],
)
def test_json_spelling_is_kept_and_only_the_copy_is_normalised(
    module_tenant: TenantEvents, module_owner_conn: Connection, payload: bytes, jsonb: Any
) -> None:
    event_id = append_and_read_back(module_tenant, payload, JSON)
    copy = stored_json_copy(module_owner_conn, module_tenant, event_id)
    if jsonb is None:
        assert copy is None
    else:
        assert copy is not None and same_json(json.loads(copy), jsonb), copy


def test_json_content_types_with_parameters_and_suffixes_get_a_copy(
    tenant: TenantEvents, owner_conn: Connection
) -> None:
    for content_type in ("application/json; charset=utf-8", "application/cloudevents+json", "text/json"):
        event_id = append_and_read_back(tenant, b'{"k": [1, 2]}', content_type)
        assert stored_json_copy(owner_conn, tenant, event_id) == '{"k": [1, 2]}'
    for content_type in (OCTETS, "text/plain", "application/jsonl"):
        event_id = append_and_read_back(tenant, b'{"k": [1, 2]}', content_type)
        assert stored_json_copy(owner_conn, tenant, event_id) is None


# --- refused payloads write nothing ----------------------------------------------------------------

NOT_JSON = [
    b"\xff",
    b'{"a":"\xc3\x28"}',
    b'"\xed\xa0\x80"',  # a surrogate encoded in UTF-8 is not UTF-8
    b'"\xc0\xaf"',  # overlong encoding
    b'"caf\xe9"',  # Latin-1
    b"",
    b"{",
    b'{"a":1,}',
    b"NaN",
    b"[Infinity]",
    b"{'a':1}",
    b'{"a":1} x',
    b'"\\x41"',
    b'"\\u12"',
    b'{"a":"\\u0000",}',  # an escape JSONB cannot hold, in a document that is not JSON anyway
    b'["\\ud800"',
]


@pytest.mark.parametrize("content_type", [JSON, "application/json; charset=utf-8", "application/cloudevents+json"])
@pytest.mark.parametrize("payload", NOT_JSON, ids=[repr(p)[2:-1][:24] or "empty" for p in NOT_JSON])
def test_invalid_json_is_refused_and_nothing_is_written(
    store: EventStore, module_tenant: TenantEvents, payload: bytes, content_type: str
) -> None:
    tenant = module_tenant
    stream_id = f"instance:{uuid4()}"
    kept = event({"kept": True})
    tenant.append(stream_id, [kept], StreamState.NO_STREAM)
    checkpoint = last_checkpoint(store, tenant)
    good = event({"good": True})
    bad = new_event(payload, content_type)

    with pytest.raises(InvalidInput) as alone:
        tenant.append(stream_id, [bad], StreamState.ANY)
    assert alone.value.field == "events[0].payload"
    with pytest.raises(InvalidInput) as in_batch:
        tenant.append(stream_id, [good, bad], 1)
    assert in_batch.value.field == "events[1].payload"
    with pytest.raises(InvalidInput):
        tenant.append(f"instance:{uuid4()}", [bad], StreamState.NO_STREAM)

    assert tenant.stream_version(stream_id) == 1
    assert [e.event_id for e in tenant.read_stream(stream_id)] == [kept.event_id]
    assert tenant.read_all(checkpoint).events == []
    # Neither id was taken: both still append as new events, at the positions nothing else used.
    result = tenant.append(stream_id, [good], 1)
    assert (result.sequence_numbers, result.repeated) == ((2,), False)
    fixed = NewEvent(event_id=bad.event_id, event_type=bad.event_type, payload=b"{}", content_type=JSON)
    assert not tenant.append(stream_id, [fixed], 2).repeated


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100000-deep"),
        pytest.param(b'{"n": 1e400000}', id="number-beyond-numeric"),
        pytest.param(b"[1e-400000]", id="number-below-numeric"),
    ],
)
def test_valid_json_that_jsonb_cannot_take_is_stored_exactly_without_a_copy(
    tenant: TenantEvents, settings: Settings, owner_conn: psycopg.Connection[tuple[Any, ...]], payload: bytes
) -> None:
    """RFC 8259 JSON that PostgreSQL's JSONB cannot parse (too deep, numbers beyond numeric) is still what
    arrived: it is kept byte-exact, with no JSONB copy, in a batch beside an ordinary event that keeps its
    copy. Never a retryable error: the input would never get better."""
    assert len(payload) <= settings.inline_payload_limit
    stream_id = f"instance:{uuid4()}"
    ordinary = new_event(b'{"ok": true}', JSON)
    tenant.append(stream_id, [ordinary, new_event(payload, JSON)], StreamState.NO_STREAM)
    first, recorded = tenant.read_stream(stream_id)
    assert recorded.payload == payload and first.payload == ordinary.payload
    copies = owner_conn.execute(
        sql.SQL("SELECT payload_json IS NOT NULL FROM {} WHERE stream_id = %s ORDER BY sequence_number").format(
            sql.Identifier(tenant.placement.schema_name, "events")
        ),
        (stream_id,),
    ).fetchall()
    assert [c[0] for c in copies] == [True, False]
