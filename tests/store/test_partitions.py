from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from eventstore import EventStore, Settings
from tests.helpers import event, random_tenant_id


def test_onboarding_creates_current_and_next_months(store: EventStore, settings: Settings) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    now = datetime.now(UTC)
    names = store.partitions(tenant_id)
    assert f"events_{now:%Y}m{now:%m}" in names
    assert len(names) >= settings.partitions_ahead + 1


def test_ensure_partitions_is_idempotent_and_safe_concurrently(store: EventStore) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    tenant = store.tenant(tenant_id)
    later = datetime(2040, 3, 15, tzinfo=UTC)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: store.ensure_partitions_for(tenant.placement, 5, later), range(12)))
    expected = [
        "events_2040m03",
        "events_2040m04",
        "events_2040m05",
        "events_2040m06",
        "events_2040m07",
        "events_2040m08",
    ]
    assert all(r == expected for r in results)
    assert set(expected) <= set(store.partitions(tenant_id))
    assert store.ensure_partitions_for(tenant.placement, 5, later) == expected


def test_the_daily_upkeep_creates_only_the_missing_months_of_every_tenant(store: EventStore) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    ahead = store.settings.partitions_ahead
    # Every tenant already has its months: nothing is created, and this tenant is not even visited.
    assert tenant_id not in store.ensure_partitions()
    # One month further ahead is missing for every tenant: that one alone is made, for this tenant too.
    created = store.ensure_partitions(ahead + 1)
    now = datetime.now(UTC)
    month = datetime(now.year + (now.month + ahead) // 12, (now.month + ahead) % 12 + 1, 1, tzinfo=UTC)
    assert created[tenant_id] == [f"events_{month:%Y}m{month:%m}"]
    assert f"events_{month:%Y}m{month:%m}" in store.partitions(tenant_id)
    assert tenant_id not in store.ensure_partitions(ahead + 1)


def test_append_across_a_month_boundary_creates_the_missing_partition(store: EventStore, settings: Settings) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    moments = iter(
        [
            datetime(2031, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            datetime(2032, 1, 1, 0, 0, 0, tzinfo=UTC) + timedelta(microseconds=1),
            datetime(2032, 1, 1, 0, 0, 5, tzinfo=UTC),
        ]
    )
    clocked = EventStore(settings, clock=lambda: next(moments))
    try:
        tenant = clocked.tenant(tenant_id)
        assert "events_2031m12" not in store.partitions(tenant_id)
        results = [tenant.append("s", [event({"n": n})]) for n in range(3)]
        assert [r.version for r in results] == [1, 2, 3]
        names = store.partitions(tenant_id)
        assert {"events_2031m12", "events_2032m01"} <= set(names)
        read = tenant.read_stream("s")
        assert [e.sequence_number for e in read] == [1, 2, 3]
        assert [e.recorded_at.year for e in read] == [2031, 2032, 2032]
        assert [e.event_id for e in tenant.read_all().events] == [e.event_id for e in read]
    finally:
        clocked.close()


def test_concurrent_appends_into_a_missing_month_all_succeed(store: EventStore, settings: Settings) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    clocked = EventStore(settings, clock=lambda: datetime(2033, 6, 1, 12, tzinfo=UTC))
    try:
        tenant = clocked.tenant(tenant_id)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda n: tenant.append(f"s{n % 3}", [event({"n": n})]), range(24)))
        assert len(results) == 24
        assert sorted(e.sequence_number for e in tenant.read_stream("s0")) == list(range(1, 9))
        assert store.partitions(tenant_id).count("events_2033m06") == 1
    finally:
        clocked.close()


def test_a_large_batch_into_a_missing_month_creates_it(store: EventStore, settings: Settings) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    clocked = EventStore(settings, clock=lambda: datetime(2034, 2, 28, 23, 59, tzinfo=UTC))
    try:
        result = clocked.tenant(tenant_id).append("s", [event({"n": n}) for n in range(40)])
        assert result.version == 40
        assert "events_2034m02" in store.partitions(tenant_id)
    finally:
        clocked.close()


def test_a_missing_month_is_created_while_a_reader_holds_the_table(
    store: EventStore, settings: Settings, database_url: str
) -> None:
    """Creating the partition must not wait for open readers (nor queue every writer behind them)."""
    import psycopg

    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    schema = store.tenant(tenant_id).placement.schema_name
    clocked = EventStore(settings, clock=lambda: datetime(2036, 3, 1, tzinfo=UTC))
    try:
        with psycopg.connect(database_url) as reader:
            reader.execute(f'SELECT count(*) FROM "{schema}".events').fetchone()  # noqa: S608 (validated name)
            # The reader's transaction stays open, holding ACCESS SHARE on events, while we append.
            result = clocked.tenant(tenant_id).append("s", [event() for _ in range(40)])
            assert result.version == 40
        assert "events_2036m03" in store.partitions(tenant_id)
    finally:
        clocked.close()
