from __future__ import annotations

import pytest

from eventstore import EventStore, InvalidInput, TenantEvents, instance_stream_id, query
from eventstore_local.samples import CLAIM_INSTANCE_ID, expense_claim_walk
from tests.helpers import random_tenant_id


def test_rebuild_at_every_point_of_a_marain_walk(walked: TenantEvents) -> None:
    tenant, walk = walked, expense_claim_walk()
    checked = 0
    for step in walk:
        if step.expected is None:
            continue
        instance = step.expected.workflow_instance_id
        state = query.rebuild_state(tenant, instance, at_sequence=step.expected.last_sequence)
        assert state == step.expected, f"{instance} at {step.expected.last_sequence}"
        checked += 1
    assert checked == 10
    latest = query.rebuild_state(tenant, CLAIM_INSTANCE_ID)
    assert (latest.state_id, latest.status, latest.last_sequence) == ("paid", "complete", 7)
    before_anything = query.rebuild_state(tenant, CLAIM_INSTANCE_ID, at_sequence=0)
    assert before_anything.status is None and before_anything.last_sequence == 0


def test_replay_from_a_sequence_number(walked: TenantEvents) -> None:
    tenant = walked
    stream = tenant.read_stream(instance_stream_id(CLAIM_INSTANCE_ID))
    replayed = list(query.replay(tenant, CLAIM_INSTANCE_ID, from_sequence=4))
    assert [e.sequence_number for e in replayed] == [4, 5, 6, 7]
    assert [e.payload for e in replayed] == [e.payload for e in stream[3:]]
    assert list(query.replay(tenant, "no-such-instance")) == []
    with pytest.raises(InvalidInput):
        list(query.replay(tenant, CLAIM_INSTANCE_ID, from_sequence=0))


def test_replay_pages_through_long_histories(store: EventStore) -> None:
    from tests.helpers import event

    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    tenant = store.tenant(tenant_id)
    stream = instance_stream_id("long")
    for start in range(0, 2500, 1000):
        tenant.append(stream, [event({"n": n}) for n in range(start, min(start + 1000, 2500))])
    assert [e.sequence_number for e in query.replay(tenant, "long", 2)] == list(range(2, 2501))
    assert query.rebuild_state(tenant, "long").last_sequence == 2500
