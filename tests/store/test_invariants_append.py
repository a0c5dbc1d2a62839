"""Idempotency is exact: a repeat is the same ids at the same positions, and the position is part of it.

A `NO_STREAM` (or expected version 0) append that finds its ids already stored is a repeat only if they
sit at the very start of the stream, where that expectation put them. Stored anywhere else, the
expectation is false now and was false then: the caller must hear `ConcurrencyConflict`, never a
"success" that hands back positions its expectation could not have produced. Every batch path (one
event, a VALUES statement, COPY) decides this in the same place; each is exercised.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from eventstore import ConcurrencyConflict, StreamState, TenantEvents
from eventstore.models import ExpectedVersion
from eventstore.store.append_events import COPY_THRESHOLD
from tests.helpers import event

SIZES = [1, 2, COPY_THRESHOLD - 1, COPY_THRESHOLD]


def count_rows(conn: psycopg.Connection[tuple[Any, ...]], tenant: TenantEvents) -> tuple[int, int]:
    schema = tenant.placement.schema_name
    counts = []
    for table in ("events", "event_ids"):
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()
        assert row is not None
        counts.append(int(row[0]))
    return counts[0], counts[1]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("expected", [StreamState.NO_STREAM, 0], ids=["NO_STREAM", "version-0"])
def test_a_no_stream_reappend_of_a_batch_stored_further_on_is_a_conflict_not_a_repeat(
    tenant: TenantEvents, owner_conn: psycopg.Connection[tuple[Any, ...]], size: int, expected: ExpectedVersion
) -> None:
    stream_id = "instance:again"
    opening = [event({"opening": n}) for n in range(size)]
    later = [event({"later": n}) for n in range(size)]
    tenant.append(stream_id, opening, StreamState.NO_STREAM)
    stored_later = tenant.append(stream_id, later, size)
    assert stored_later.sequence_numbers[0] == size + 1

    # The ids are stored, with this content, in this stream, contiguously: everything a repeat needs
    # except the position the expectation implies (1).
    with pytest.raises(ConcurrencyConflict) as caught:
        tenant.append(stream_id, later, expected)
    assert caught.value.stream_id == stream_id
    assert caught.value.actual_version == 2 * size

    # The batch at the start of the stream is a true repeat under the same expectation.
    again = tenant.append(stream_id, opening, expected)
    assert again.repeated and again.sequence_numbers == tuple(range(1, size + 1))
    assert tenant.stream_version(stream_id) == 2 * size
    assert count_rows(owner_conn, tenant) == (2 * size, 2 * size)
