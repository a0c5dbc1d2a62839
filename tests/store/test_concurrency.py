"""Many writers on one stream: sequence numbers stay gapless, compare-and-set holds, repeats are exact.

Every test here runs real threads against the real PostgreSQL of the fixtures; nothing is mocked.
"""

from __future__ import annotations

import random
from itertools import pairwise
from uuid import UUID, uuid4

import pytest

from eventstore import AppendResult, ConcurrencyConflict, NewEvent, StreamState, TenantEvents
from tests.helpers import event, run_threads

WRITERS = 8


@pytest.mark.slow
def test_concurrent_any_appends_to_one_stream_are_gapless_and_contiguous(tenant: TenantEvents) -> None:
    stream_id = f"instance:{uuid4()}"
    appends_per_writer = 40
    results: list[list[tuple[list[UUID], AppendResult]]] = [[] for _ in range(WRITERS)]

    def write(index: int) -> None:
        rng = random.Random(index)
        for n in range(appends_per_writer):
            batch = [event({"writer": index, "append": n, "item": i}) for i in range(rng.randint(1, 5))]
            result = tenant.append(stream_id, batch, StreamState.ANY)
            results[index].append(([e.event_id for e in batch], result))

    run_threads(WRITERS, write)

    appends = [pair for per_writer in results for pair in per_writer]
    total = sum(len(ids) for ids, _ in appends)
    stored = tenant.read_stream(stream_id, limit=total + 10)

    assert [e.sequence_number for e in stored] == list(range(1, total + 1))
    assert len(stored) == total
    assert tenant.stream_version(stream_id) == total
    assert len({e.event_id for e in stored}) == total
    by_id = {e.event_id: e for e in stored}
    for ids, result in appends:
        assert not result.repeated
        first = result.sequence_numbers[0]
        assert result.sequence_numbers == tuple(range(first, first + len(ids)))
        assert result.version == first + len(ids) - 1
        assert [by_id[i].sequence_number for i in ids] == list(result.sequence_numbers)
        assert [by_id[i].global_position for i in ids] == list(result.global_positions)
    positions = [e.global_position for e in stored]
    assert all(a < b for a, b in pairwise(positions)), "positions must rise with sequence"
    # Every writer's own appends landed in the order it made them.
    for per_writer in results:
        firsts = [result.sequence_numbers[0] for _, result in per_writer]
        assert firsts == sorted(firsts)


@pytest.mark.slow
def test_optimistic_concurrency_retries_store_every_event_exactly_once(tenant: TenantEvents) -> None:
    stream_id = f"instance:{uuid4()}"
    appends_per_writer = 12
    written: list[list[UUID]] = [[] for _ in range(WRITERS)]
    conflicts = [0] * WRITERS

    def write(index: int) -> None:
        rng = random.Random(1000 + index)
        for n in range(appends_per_writer):
            batch = [event({"writer": index, "append": n, "item": i}) for i in range(rng.randint(1, 3))]
            for _attempt in range(10_000):
                expected = tenant.stream_version(stream_id)
                try:
                    result = tenant.append(stream_id, batch, expected)
                except ConcurrencyConflict as exc:
                    assert exc.stream_id == stream_id
                    assert exc.actual_version >= expected, (exc.actual_version, expected)
                    conflicts[index] += 1
                    continue
                # The compare-and-set wrote exactly after the version this writer saw.
                assert not result.repeated
                assert result.sequence_numbers == tuple(range(expected + 1, expected + 1 + len(batch)))
                written[index].extend(e.event_id for e in batch)
                break
            else:
                pytest.fail(f"writer {index} never got its append {n} in")

    run_threads(WRITERS, write)

    expected_ids = [i for ids in written for i in ids]
    total = len(expected_ids)
    stored = tenant.read_stream(stream_id, limit=total + 10)
    assert [e.sequence_number for e in stored] == list(range(1, total + 1))
    assert sorted(e.event_id for e in stored) == sorted(expected_ids)
    assert tenant.stream_version(stream_id) == total
    # Each writer's events are in its own order.
    position = {e.event_id: e.sequence_number for e in stored}
    for ids in written:
        assert [position[i] for i in ids] == sorted(position[i] for i in ids)
    # Eight writers racing on one version must have collided; if not, the test proved nothing.
    assert sum(conflicts) > 0


def test_exact_version_conflict_reports_the_actual_version(tenant: TenantEvents) -> None:
    stream_id = f"instance:{uuid4()}"
    tenant.append(stream_id, [event(), event(), event()], StreamState.NO_STREAM)
    for stale in (0, 1, 2, 4):
        with pytest.raises(ConcurrencyConflict) as caught:
            tenant.append(stream_id, [event()], stale)
        assert caught.value.actual_version == 3
    assert tenant.stream_version(stream_id) == 3


@pytest.mark.parametrize("expected", [StreamState.NO_STREAM, StreamState.ANY], ids=["no_stream", "any"])
def test_concurrent_idempotent_retries_write_once(tenant: TenantEvents, expected: StreamState) -> None:
    for round_number in range(10):
        stream_id = f"instance:{uuid4()}"
        batch: list[NewEvent] = [event({"round": round_number, "item": i}) for i in range(3)]
        results: list[AppendResult | None] = [None] * WRITERS

        def write(
            index: int,
            stream_id: str = stream_id,
            batch: list[NewEvent] = batch,
            results: list[AppendResult | None] = results,
        ) -> None:
            results[index] = tenant.append(stream_id, batch, expected)

        run_threads(WRITERS, write)

        done = [r for r in results if r is not None]
        assert len(done) == WRITERS
        assert sum(not r.repeated for r in done) == 1, [r.repeated for r in done]
        assert {r.sequence_numbers for r in done} == {(1, 2, 3)}
        assert len({r.global_positions for r in done}) == 1
        stored = tenant.read_stream(stream_id)
        assert [e.event_id for e in stored] == [e.event_id for e in batch]
        assert tuple(e.global_position for e in stored) == done[0].global_positions
        assert tenant.stream_version(stream_id) == 3
