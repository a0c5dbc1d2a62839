"""A tenant's failures: the hourly failure rate of the last 7 days as a chart with the alert threshold, and the
same figures as a table; the failures grouped by category as the weekly email groups them; the message types
and workflows that failed most; the alert state (incidents, the latest notifications). The rate is the
failure-rate rule's: failed among the executions that ended (a dead-lettered one is a failed one)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from eventstore.alerts.categories import category_of
from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute, parsed
from eventstore.query.instances import up_to_date
from eventstore.query.traces import failure_counts
from eventstore.store import NO_CONTROL_CHARACTERS, IncidentRow
from eventstore.views import EXECUTIONS, FAILURE_COUNTS, INSTANCES, MESSAGES
from eventstore.views.failure_counts import HOUR, FailureBucket, hour_of
from eventstore.views.summary import Breakdown, Counts, FailureGroup, tenant_summary

HOURS = 7 * 24
TOP = 10
CATEGORISED = 1000
"""The latest failures of the 7 days the categories are made from: enough to see what is failing, and a bound
on the page's work (each is read with its failing step and put in its category)."""
"""Categories, message types and workflows shown."""
NOTICES_SHOWN = 20
INCIDENTS_SHOWN = 20
MAX_WORKFLOW_LENGTH = 512
"""As the JSON API's `workflowId` filter."""

# The chart's geometry, in the units of its viewBox (the stylesheet scales it to the page's width).
WIDTH, HEIGHT = 1000, 270
LEFT, RIGHT, TOP_Y, BOTTOM = 64, 985, 16, 220


class FailuresQuery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    workflow: str | None = Field(
        default=None, min_length=1, max_length=MAX_WORKFLOW_LENGTH, pattern=NO_CONTROL_CHARACTERS
    )


def rate_text(value: object) -> str:
    """A rate as a percentage; anything but a number (a figure an incident did not keep) as a dash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "\u2013"
    return f"{value * 100:.1f} %"


@dataclass(frozen=True)
class Hour:
    """One hour of the range: its counts, whether its rate is over the threshold, and where its point is."""

    start: datetime
    counts: Counts
    over: bool
    x: float
    y: float | None
    """None when no execution ended in the hour: it has no rate to draw."""

    @property
    def rate(self) -> str:
        return rate_text(self.counts.failure_rate)

    @property
    def title(self) -> str:
        c = self.counts
        return f"{self.start:%Y-%m-%d %H:00} UTC: {c.failed} of {c.ended} ended failed ({self.rate})"


@dataclass(frozen=True)
class Tick:
    at: float
    label: str
    label_at: float | None = None
    """Where the label goes when not at `at` (a day's name in the middle of the day; None: not shown)."""


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    hours: list[Hour]
    lines: list[str]
    """`points` of each run of consecutive hours that have a rate (an hour without one breaks the line)."""
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    threshold_y: float
    threshold: str
    summary: str
    """What the chart shows, in words (its accessible name)."""


STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25)
"""Between two lines of the rate axis: the least of these that needs at most 5 of them."""


def rate_axis(rates: Sequence[float], threshold: float) -> tuple[float, float]:
    """The top of the rate axis and the step between its lines: a whole step at or above the highest rate and
    twice the threshold (so that the threshold line is never at the edge)."""
    highest = min(1.0, max([threshold * 2, *rates]))
    step = next((s for s in STEPS if highest <= 5 * s + 1e-9), STEPS[-1])
    return min(1.0, math.ceil(highest / step - 1e-9) * step), step


def chart(start: datetime, buckets: Sequence[FailureBucket], threshold: float) -> Chart:
    """The hours from `start` (`HOURS` of them) summed across workflows and message types, placed on the chart."""
    by_hour: dict[datetime, Counts] = defaultdict(Counts)
    for b in buckets:
        by_hour[hour_of(b.start)].add(b.started, b.succeeded, b.failed, b.dead_lettered)
    starts = [start + timedelta(hours=n) for n in range(HOURS)]
    counts = [by_hour.get(moment, Counts()) for moment in starts]
    top, step = rate_axis([r for c in counts if (r := c.failure_rate) is not None], threshold)
    slot = (RIGHT - LEFT) / HOURS

    def y(value: float) -> float:
        return round(BOTTOM - (BOTTOM - TOP_Y) * min(value, top) / top, 1)

    hours = []
    for n, (moment, c) in enumerate(zip(starts, counts, strict=True)):
        value = c.failure_rate
        hours.append(
            Hour(moment, c, value is not None and value > threshold, round(LEFT + (n + 0.5) * slot, 1),
                 None if value is None else y(value))
        )  # fmt: skip
    lines: list[str] = []
    run: list[str] = []
    for h in [*hours, None]:
        if h is not None and h.y is not None:
            run.append(f"{h.x},{h.y}")
            continue
        if len(run) > 1:
            lines.append(" ".join(run))
        run = []
    y_ticks = [Tick(y(step * k), rate_text(step * k)) for k in range(round(top / step) + 1)]
    x_ticks = []
    for n, moment in enumerate(starts):
        if moment.hour == 0:
            middle = LEFT + (n + 12) * slot  # the day's name goes in its middle, unless the chart ends first
            label_at = round(middle, 1) if middle < RIGHT - 20 else None
            x_ticks.append(Tick(round(LEFT + n * slot, 1), f"{moment:%a %d}", label_at))
    return Chart(
        WIDTH, HEIGHT, LEFT, RIGHT, TOP_Y, BOTTOM, hours, lines, y_ticks, x_ticks, y(threshold),
        rate_text(threshold), _summary(hours, threshold),
    )  # fmt: skip


def _summary(hours: Sequence[Hour], threshold: float) -> str:
    total = Counts()
    for h in hours:
        total.add(h.counts.started, h.counts.succeeded, h.counts.failed, h.counts.dead_lettered)
    over = [h for h in hours if h.over]
    text = "Hourly failure rate over the last 7 days (UTC): " + (
        f"{total.failed} of {total.ended} executions that ended failed ({rate_text(total.failure_rate)}); "
        if total.ended
        else "no execution ended; "
    )
    if over:
        worst = max(over, key=lambda h: (h.counts.failure_rate or 0.0, h.start))
        text += (
            f"{len(over)} hour(s) over the {rate_text(threshold)} alert threshold, the highest {worst.rate} at "
            f"{worst.start:%Y-%m-%d %H:00}. "
        )
    else:
        text += f"no hour over the {rate_text(threshold)} alert threshold. "
    return text + "The table below gives each hour's figures."


@dataclass(frozen=True)
class Ranked:
    key: str | None
    counts: Counts

    @property
    def rate(self) -> str:
        return rate_text(self.counts.failure_rate)


def _ranked(entries: dict[str | None, Counts]) -> list[Ranked]:
    failing = [Ranked(k, c) for k, c in entries.items() if c.failed]
    failing.sort(key=lambda r: (-r.counts.failed, -r.counts.dead_lettered, -r.counts.started, r.key or ""))
    return failing[:TOP]


def by_message_type(buckets: Sequence[FailureBucket]) -> list[Ranked]:
    out: dict[str | None, Counts] = defaultdict(Counts)
    for b in buckets:
        out[b.message_type].add(b.started, b.succeeded, b.failed, b.dead_lettered)
    return _ranked(out)


def by_workflow(breakdown: Sequence[Breakdown]) -> list[Ranked]:
    return _ranked({b.key: b.counts for b in breakdown})


@dataclass(frozen=True)
class NoticeShown:
    channel: str
    kind: str
    state: str
    attempts: int
    created_at: datetime
    text: str
    last_error: str | None


def _notice_text(body: dict[str, Any]) -> str:
    """What a notification says: a Slack post's or a page's summary, else its action (a PagerDuty resolve)."""
    for member in ("summary", "text", "action"):
        value = body.get(member)
        if isinstance(value, str) and value:
            return value
    return ""


def _incident_order(incident: IncidentRow) -> tuple[bool, float]:
    return incident.state != "open", -(incident.resolved_at or incident.opened_at).timestamp()


def _query(asked: Asked) -> FailuresQuery:
    return parsed(FailuresQuery, asked.req.params)


def failures(asked: Asked) -> Answer:
    asked_for = _query(asked)
    store = asked.store
    tenant_id = up_to_date(store, asked.tenant_id(), MESSAGES, EXECUTIONS, FAILURE_COUNTS, INSTANCES)
    threshold = store.settings.alert_failure_rate
    now = datetime.now(UTC)
    end = hour_of(now) + timedelta(hours=1)  # the current hour included
    start = end - timedelta(hours=HOURS)
    workflow = asked_for.workflow
    buckets, truncated = failure_counts(
        store, tenant_id, granularity=HOUR, counted_from=start, counted_to=end, workflow_id=workflow
    )
    drawn = chart(start, buckets, threshold)
    # The categories and the workflows' figures over the same hours, as the weekly email reads them.
    # The latest failures only: the page's work stays bounded however many failed (the counts stay whole).
    summary = tenant_summary(
        store.views(tenant_id), start, end, categorise=category_of, max_failures=CATEGORISED, latest_failures=True
    )
    groups: list[FailureGroup] = [g for g in summary.groups if workflow is None or g.workflow_id == workflow]
    workflows = sorted({b.key for b in summary.by_workflow if b.key} | ({workflow} if workflow else set()))
    alerts = store.alerts(tenant_id)
    incidents = sorted(alerts.incidents(), key=_incident_order)[:INCIDENTS_SHOWN]
    notices = [
        NoticeShown(row.channel, row.kind, row.state, row.attempts, row.created_at, _notice_text(row.body), error)
        for row, error in reversed(alerts.outbox(limit=NOTICES_SHOWN))
    ]
    total = Counts()
    for h in drawn.hours:
        total.add(h.counts.started, h.counts.succeeded, h.counts.failed, h.counts.dead_lettered)
    return asked.page(
        "failures.html", "Failures", tenant_id=tenant_id, section="failures", chart=drawn,
        counted=[h for h in drawn.hours if h.counts.started or h.counts.ended], total=total,
        total_rate=rate_text(total.failure_rate), truncated=truncated, workflow=workflow, workflows=workflows,
        start=start, end=end, groups=groups[:TOP], group_count=len(groups),
        groups_truncated=summary.failures_truncated, categorised=CATEGORISED, by_message_type=by_message_type(buckets),
        by_workflow=by_workflow(summary.by_workflow), incidents=incidents, notices=notices,
        threshold=rate_text(threshold), min_executions=store.settings.alert_min_executions,
        window_minutes=store.settings.alert_window_minutes, rate=rate_text,
    )  # fmt: skip


ROUTES = (ConsoleRoute("console_failures", f"{TENANT}/failures", failures),)
