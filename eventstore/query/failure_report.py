"""The deployment-wide failure report (issue 12, metrics): for every tenant, its failure counts over a range
of whole UTC hours or days, from the failure-counts view, summed per tenant and over the deployment, with
the per-bucket series and the workflows and message types that failed most.

Cost: one pass over the tenants. Each tenant's failure-counts view is first brought up to date (as every
read of a view is: a few statements when it has nothing to apply), then read once: one statement over the
`(hour, workflow_id, message_type)` primary key's range [start, end), grouped three ways at once (by bucket,
by workflow, by message type), so the rows read are the tenant's hours in the range and the rows answered
are its buckets, workflows and message types, never one query per bucket. A deployment of N tenants costs
N catch-ups and N indexed reads.

A tenant whose view could not be brought up to date (stopped at an event it cannot apply, or held by another
runner or a backlog for longer than a read waits) is left out of the sums and listed in `skipped` with why:
its counts would be old, and the rest of the deployment still answers. So is a tenant whose database did not
answer, or that was offboarded while the report ran.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from eventstore.errors import InvalidInput, StoreUnavailable, UnknownTenant
from eventstore.query.instances import CATCH_UP_SECONDS, catch_up
from eventstore.store import EventStore, TenantViews
from eventstore.views import FAILURE_COUNTS
from eventstore.views.failure_counts import DAY, HOUR, TABLES, bucket_start
from eventstore.views.summary import Counts

GRANULARITIES = (HOUR, DAY)
STEP = {HOUR: timedelta(hours=1), DAY: timedelta(days=1)}
DEFAULT_SPAN = {HOUR: timedelta(hours=24), DAY: timedelta(days=7)}
"""The range when none is given: the last 24 hours, or the last 7 days (the current bucket included)."""
MAX_SPAN = {HOUR: timedelta(days=31), DAY: timedelta(days=366)}
"""The longest range one report covers (744 hourly or 366 daily buckets)."""
TOP = 10
"""How many workflows and message types the report ranks."""

_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Bucket:
    """The deployment's counts in one hour or day (starting at `start`)."""

    start: datetime
    counts: Counts


@dataclass(frozen=True)
class TenantFailures:
    tenant_id: str
    counts: Counts


@dataclass(frozen=True)
class Ranked:
    """A workflow or a message type of a tenant (`key` None: executions without one) and its counts."""

    tenant_id: str
    key: str | None
    counts: Counts


@dataclass(frozen=True)
class Skipped:
    tenant_id: str
    reason: str


@dataclass(frozen=True)
class DeploymentFailures:
    granularity: str
    start: datetime
    end: datetime
    """The range counted, [start, end), on whole buckets."""
    tenants_read: int
    totals: Counts
    buckets: list[Bucket]
    """Every bucket of the range in time order, those with nothing counted too (a series to draw)."""
    tenants: list[TenantFailures]
    """Every tenant read that has anything counted in the range, most failures first."""
    top_workflows: list[Ranked]
    top_message_types: list[Ranked]
    skipped: list[Skipped] = field(default_factory=list)


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        return _FIRST if moment.year == 1 else _LAST


def _plus(moment: datetime, delta: timedelta) -> datetime:
    try:
        return moment + delta
    except OverflowError:
        return _LAST if delta > timedelta(0) else _FIRST


def _start_of(moment: datetime, granularity: str) -> datetime:
    return bucket_start(_utc(moment), granularity)


def _end_of(moment: datetime, granularity: str, *, inclusive: bool = False) -> datetime:
    """The end of the last whole bucket that starts before `moment` (at or before it, `inclusive`)."""
    last = _start_of(moment, granularity)
    return last if last == _utc(moment) and not inclusive else _plus(last, STEP[granularity])


def report_range(
    granularity: str, counted_from: datetime | None, counted_to: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The whole buckets [start, end) a report covers, as the tenant route counts them: from the bucket
    holding `counted_from` to the last bucket that starts before `counted_to`. Without `counted_to`, up to
    the current bucket (included); without `counted_from`, `DEFAULT_SPAN` before the end. A range longer
    than `MAX_SPAN` is refused, naming the parameter that made it so; an empty one (`to` not after `from`)
    is no error: it counts nothing."""
    end = _end_of(now if counted_to is None else counted_to, granularity, inclusive=counted_to is None)
    start = _plus(end, -DEFAULT_SPAN[granularity]) if counted_from is None else _start_of(counted_from, granularity)
    if end - start > MAX_SPAN[granularity]:
        longest = MAX_SPAN[granularity].days
        given = "from and to" if counted_to is not None else "from and now"
        raise InvalidInput(
            f"{given} span {(end - start).days} days of whole {granularity}s; granularity={granularity} covers at "
            f"most {longest} days (from {start.isoformat()} to {end.isoformat()} asked)",
            field="from" if counted_from is not None else "to",
        )
    return start, end


def _series(start: datetime, end: datetime, granularity: str) -> list[datetime]:
    starts: list[datetime] = []
    moment = start
    while moment < end:
        starts.append(moment)
        following = _plus(moment, STEP[granularity])
        if following == moment:  # the end of time
            break
        moment = following
    return starts


_BY_BUCKET, _BY_WORKFLOW, _BY_TYPE = 0, 1, 2


_BUCKET_OF_HOUR = {HOUR: "hour", DAY: "date_trunc('day', hour, 'UTC')"}
_GROUPED = (
    "SELECT CASE WHEN GROUPING(bucket) = 0 THEN 0 WHEN GROUPING(workflow_id) = 0 THEN 1 ELSE 2 END,"
    " bucket, workflow_id, message_type, sum(started)::bigint, sum(succeeded)::bigint, sum(failed)::bigint,"
    " sum(dead_lettered)::bigint FROM (SELECT BUCKET AS bucket, workflow_id, message_type, started, succeeded,"
    " failed, dead_lettered FROM {counts} WHERE hour >= %s AND hour < %s) c"
    " GROUP BY GROUPING SETS ((bucket), (workflow_id), (message_type))"
)


def _tenant_rows(views: TenantViews, start: datetime, end: datetime, granularity: str) -> list[tuple[Any, ...]]:
    """(grouping, bucket, workflow, message type, started, succeeded, failed, dead-lettered) rows: one per
    bucket, one per workflow and one per message type with anything counted, from one statement."""
    statement = _GROUPED.replace("BUCKET", _BUCKET_OF_HOUR[granularity])
    return views.fetch(TABLES, statement, [start, end])


def _why_not_current(views: TenantViews) -> str:
    state = views.states().get(FAILURE_COUNTS.name)
    if state is not None and state.stopped_reason:
        return (
            f"its {FAILURE_COUNTS.name} view stopped at event {state.stopped_event_id}, which it cannot apply: "
            f"{state.stopped_reason} (GET /api/tenants/{views.tenant_id}/views shows it)"
        )
    return (
        f"its {FAILURE_COUNTS.name} view could not be brought up to date within {CATCH_UP_SECONDS:g} s "
        "(another runner holds it, or it has a backlog); its counts would be old"
    )


def _ranked(entries: list[Ranked], top: int) -> list[Ranked]:
    def order(r: Ranked) -> tuple[int, int, int, str, str]:
        return (-r.counts.failed, -r.counts.dead_lettered, -r.counts.started, r.tenant_id, r.key or "")

    return sorted(entries, key=order)[:top]


def deployment_failures(
    store: EventStore, start: datetime, end: datetime, granularity: str = HOUR, *, top: int = TOP
) -> DeploymentFailures:
    """Every tenant's failure counts in [start, end), widened to whole buckets of `granularity` (the bucket
    holding `start` to the last that starts before `end`; `report_range` picks them from a request),
    summed per tenant and overall, with the overall series per bucket and the `top` workflows and message
    types by failures. Tenants whose view is not current are in `skipped`, not in the sums."""
    if granularity not in STEP:
        raise InvalidInput(f"granularity must be one of {', '.join(GRANULARITIES)}", field="granularity")
    start, end = _start_of(start, granularity), _end_of(end, granularity)
    starts = _series(start, end, granularity)
    by_bucket: dict[datetime, Counts] = {moment: Counts() for moment in starts}
    totals = Counts()
    tenants: list[TenantFailures] = []
    workflows: list[Ranked] = []
    message_types: list[Ranked] = []
    skipped: list[Skipped] = []
    unavailable: list[StoreUnavailable] = []
    read = 0
    placements = store.tenants() if starts else []
    for placement in placements:
        tenant_id = placement.tenant_id
        try:
            views = store.views(tenant_id)
            if not catch_up(store, tenant_id, FAILURE_COUNTS):
                skipped.append(Skipped(tenant_id, _why_not_current(views)))
                continue
            rows = _tenant_rows(views, start, end, granularity)
        except UnknownTenant:
            skipped.append(Skipped(tenant_id, "it was offboarded while the report ran"))
            continue
        except StoreUnavailable as exc:
            unavailable.append(exc)
            skipped.append(Skipped(tenant_id, f"its database did not answer: {exc}"))
            continue
        read += 1
        own = Counts()
        kinds: dict[int, dict[str | None, Counts]] = {_BY_WORKFLOW: defaultdict(Counts), _BY_TYPE: defaultdict(Counts)}
        for kind, moment, workflow_id, message_type, *figures in rows:
            numbers = [int(n) for n in figures]
            if kind == _BY_BUCKET:
                own.add(*numbers)
                by_bucket.setdefault(_utc(moment), Counts()).add(*numbers)
            else:
                kinds[kind][(workflow_id if kind == _BY_WORKFLOW else message_type) or None].add(*numbers)
        if own.started or own.ended:
            totals.add(own.started, own.succeeded, own.failed, own.dead_lettered)
            tenants.append(TenantFailures(tenant_id, own))
        workflows += [Ranked(tenant_id, key, counts) for key, counts in kinds[_BY_WORKFLOW].items()]
        message_types += [Ranked(tenant_id, key, counts) for key, counts in kinds[_BY_TYPE].items()]
    if unavailable and len(unavailable) == len(placements):
        raise unavailable[0]  # no tenant's database answered: a 503, not a report of nothing
    tenants.sort(key=lambda t: (-t.counts.failed, -t.counts.dead_lettered, -t.counts.started, t.tenant_id))
    return DeploymentFailures(
        granularity=granularity,
        start=start,
        end=end,
        tenants_read=read,
        totals=totals,
        buckets=[Bucket(moment, by_bucket[moment]) for moment in sorted(by_bucket)],
        tenants=tenants,
        top_workflows=_ranked(workflows, top),
        top_message_types=_ranked(message_types, top),
        skipped=sorted(skipped, key=lambda s: s.tenant_id),
    )
