"""The weekly summary email to the operations owner (issue 12): per tenant, the messages received, the
success rate and its trend against the week before, the top failure categories by message type and by
workflow, faulted instances, dead letters, and the daily failure rate as a chart people read at a glance
(an inline SVG bar chart in the HTML part, a sparkline in the text part).

`build_report` reads every tenant's views for the week and the week before; `render` turns the report into
the subject and the two parts, with the jinja2 templates in `templates/` (autoescaped: every tenant id,
message type and error text is data). Every link is built by `categories.admin_url`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from pydantic import BaseModel

from eventstore.alerts.categories import category_of, failures_url, replay_url
from eventstore.query import up_to_date
from eventstore.store import EventStore, TenantViews
from eventstore.views import EXECUTIONS, FAILURE_COUNTS, INSTANCES, MESSAGES
from eventstore.views.summary import Counts, FailureGroup, TenantSummary, tenant_summary

WEEK = timedelta(days=7)
THRESHOLD = 0.05
"""The failure rate the chart draws a line at (the failure-rate rule's, `EVENTSTORE_ALERT_FAILURE_RATE`)."""
TOP_PER_KEY = 3
"""Categories shown under each message type and each workflow."""
SPARKS = "▁▂▃▄▅▆▇█"


def week_before(moment: datetime) -> datetime:
    """The start (Monday 00:00 UTC) of the last whole week before `moment`."""
    day = moment.astimezone(UTC).date()
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC) - WEEK


def summarise(views: TenantViews, start: datetime, end: datetime) -> TenantSummary:
    """A tenant's summary over [start, end), its failures grouped by `categories.category_of`."""
    return tenant_summary(views, start, end, categorise=category_of)


class TenantWeek(BaseModel):
    week: TenantSummary
    previous: TenantSummary


class WeeklyReport(BaseModel):
    start: datetime
    """Monday 00:00 UTC; the week is [start, start + 7 days), compared with the 7 days before."""
    tenants: list[TenantWeek]
    threshold: float = THRESHOLD

    @property
    def end(self) -> datetime:
        return self.start + WEEK

    def totals(self, previous: bool = False) -> Counts:
        out = Counts()
        for t in self.tenants:
            c = (t.previous if previous else t.week).totals
            out.add(c.started, c.succeeded, c.failed, c.dead_lettered)
        return out

    def messages(self, previous: bool = False) -> int:
        return sum((t.previous if previous else t.week).messages_received for t in self.tenants)

    def days(self) -> list[tuple[date, Counts]]:
        by_day: dict[date, Counts] = {}
        for t in self.tenants:
            for d in t.week.days:
                c = d.counts
                by_day.setdefault(d.day, Counts()).add(c.started, c.succeeded, c.failed, c.dead_lettered)
        return sorted(by_day.items())


def build_report(
    store: EventStore, start: datetime, *, tenant_ids: Iterable[str] | None = None, threshold: float = THRESHOLD
) -> WeeklyReport:
    """The report of the week from `start` (every tenant unless named), each tenant's views brought up to
    date first."""
    ids = sorted(tenant_ids) if tenant_ids is not None else sorted(p.tenant_id for p in store.tenants())
    weeks = []
    for tenant_id in ids:
        canonical = up_to_date(store, tenant_id, MESSAGES, EXECUTIONS, FAILURE_COUNTS, INSTANCES)
        views = store.views(canonical)
        weeks.append(
            TenantWeek(week=summarise(views, start, start + WEEK), previous=summarise(views, start - WEEK, start))
        )
    return WeeklyReport(start=start, tenants=weeks, threshold=threshold)


# --- rendering ------------------------------------------------------------------------------------------


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _number(value: int) -> str:
    return f"{value:,}"


def _change(now: int, before: int) -> str:
    if before == 0:
        return "none the week before" if now else "none the week before either"
    delta = (now - before) / before
    arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
    return f"{arrow} {abs(delta) * 100:.0f} % against the week before ({_number(before)})"


def _points(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return "no comparison"
    delta = (now - before) * 100
    arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
    return f"{arrow} {abs(delta):.1f} points against the week before ({percent(before)})"


def sparkline(rates: Sequence[float | None]) -> str:
    """One character per day, the highest day full height; a day with nothing ended is a space-like dot."""
    top = max((r for r in rates if r is not None), default=0.0)
    if top <= 0:
        return "".join(SPARKS[0] if r is not None else "·" for r in rates)
    return "".join("·" if r is None else SPARKS[min(7, round(r / top * 7))] for r in rates)


def _scale_top(rates: Sequence[float | None], threshold: float) -> float:
    """The chart's top: a whole 5 %, above the highest day and twice the threshold."""
    highest = max([threshold * 2, *(r for r in rates if r is not None)])
    return min(1.0, math.ceil(highest * 20 - 1e-9) / 20) or 0.05


def chart(days: Sequence[tuple[date, Counts]], threshold: float) -> dict[str, Any]:
    """The geometry of the bar chart of daily failure rates (the template draws it)."""
    width, height, left, top, bottom = 460, 190, 44, 22, 150
    rates = [c.failure_rate for _, c in days]
    scale = _scale_top(rates, threshold)
    slot = (width - left - 10) / max(1, len(days))
    bar = slot * 0.62

    def y(value: float) -> float:
        return round(bottom - (bottom - top) * min(value, scale) / scale, 1)

    bars = []
    for n, (day, counts) in enumerate(days):
        value = counts.failure_rate
        x = round(left + n * slot + (slot - bar) / 2, 1)
        bars.append(
            {
                "x": x,
                "y": y(value or 0.0),
                "height": round(bottom - y(value or 0.0), 1),
                "width": round(bar, 1),
                "centre": round(x + bar / 2, 1),
                "label": day.strftime("%a %d"),
                "value": percent(value) if value is not None else "-",
                "over": value is not None and value > threshold,
                "title": f"{day.isoformat()}: {counts.failed} of {counts.ended} failed ({percent(value)})",
            }
        )
    ticks = [{"y": y(scale * k / 4), "label": f"{scale * k / 4 * 100:.0f} %"} for k in range(5)]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - 10,
        "bottom": bottom,
        "bars": bars,
        "ticks": ticks,
        "threshold": {"y": y(threshold), "label": percent(threshold)},
        "sparkline": sparkline(rates),
    }


def _group(g: FailureGroup, base_url: str, tenant_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "id": g.category_id,
        "count": g.count,
        "dead_lettered": g.dead_lettered,
        "message_type": g.message_type or "(no message)",
        "workflow": g.workflow_id or "(no workflow)",
        "step": g.step or "(no step)",
        "error_class": g.error_class,
        "message": g.message,
        "example_execution_id": g.example_execution_id,
        "example_message_event_id": str(g.example_message_event_id) if g.example_message_event_id else None,
        "failures_url": failures_url(base_url, tenant_id, start, end, category_id=g.category_id),
        "replay_url": replay_url(
            base_url, tenant_id, start, end, message_type=g.message_type, workflow_id=g.workflow_id
        ),
    }


def _by(keyed: Sequence[Any], groups: list[dict[str, Any]], member: str, none: str) -> list[dict[str, Any]]:
    """Per message type (or workflow) with failures: its figures and its top categories."""
    out = []
    for b in keyed:
        if b.counts.failed == 0:
            continue
        name = b.key or none
        out.append(
            {
                "name": name,
                "failed": b.counts.failed,
                "ended": b.counts.ended,
                "rate": percent(b.counts.failure_rate),
                "groups": [g for g in groups if g[member] == name][:TOP_PER_KEY],
            }
        )
    return out


def _tenant(t: TenantWeek, base_url: str, threshold: float) -> dict[str, Any]:
    week, before = t.week, t.previous
    tenant_id, start, end = week.tenant_id, week.start, week.end
    groups = [_group(g, base_url, tenant_id, start, end) for g in week.groups]
    days = [(d.day, d.counts) for d in week.days]
    return {
        "id": tenant_id,
        "messages": _number(week.messages_received),
        "messages_trend": _change(week.messages_received, before.messages_received),
        "succeeded": _number(week.totals.succeeded),
        "failed": _number(week.totals.failed),
        "ended": _number(week.totals.ended),
        "success_rate": percent(week.success_rate),
        "success_trend": _points(week.success_rate, before.success_rate),
        "failed_trend": _change(week.totals.failed, before.totals.failed),
        "chart": chart(days, threshold),
        "days": [{"label": d.strftime("%a %d %b"), "failed": c.failed, "ended": c.ended,
                  "rate": percent(c.failure_rate), "over": (c.failure_rate or 0) > threshold} for d, c in days],
        "groups": groups[:10],
        "group_count": week.group_count,
        "truncated": week.failures_truncated,
        "failures_read": _number(week.failures_read),
        "by_message_type": _by(week.by_message_type, groups, "message_type", "(no message)"),
        "by_workflow": _by(week.by_workflow, groups, "workflow", "(no workflow)"),
        "faulted_count": week.faulted_count,
        "faulted": week.faulted,
        "dead_letter_count": week.dead_letter_count,
        "dead_letters": week.dead_letters,
        "failures_url": failures_url(base_url, tenant_id, start, end),
        "replay_url": replay_url(base_url, tenant_id, start, end),
    }  # fmt: skip


@cache
def _environment() -> jinja2.Environment:
    # Read through importlib.resources so the templates load from a source checkout and an installed
    # package alike (pyproject ships them as package data).
    folder = resources.files("eventstore.alerts") / "templates"
    templates = {name: (folder / name).read_text(encoding="utf-8") for name in ("weekly.html.j2", "weekly.txt.j2")}
    return jinja2.Environment(
        loader=jinja2.DictLoader(templates),
        # The HTML part escapes every value (tenant ids, message types, error text are data); the text part
        # is text/plain, where an entity would show as one.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(report: WeeklyReport, base_url: str) -> tuple[str, str, str]:
    """The email: (subject, plain-text part, HTML part)."""
    totals, before = report.totals(), report.totals(previous=True)
    last_day = (report.end - timedelta(days=1)).date()
    messages = report.messages()
    context = {
        "start": report.start.date().isoformat(),
        "end": last_day.isoformat(),
        "messages": _number(messages),
        "messages_trend": _change(messages, report.messages(previous=True)),
        "succeeded": _number(totals.succeeded),
        "failed": _number(totals.failed),
        "ended": _number(totals.ended),
        "success_rate": percent(totals.success_rate),
        "success_trend": _points(totals.success_rate, before.success_rate),
        "threshold": percent(report.threshold),
        "chart": chart(report.days(), report.threshold),
        "tenants": [_tenant(t, base_url, report.threshold) for t in report.tenants],
    }
    subject = (
        f"Event store weekly summary {context['start']} to {context['end']}: {context['messages']} messages, "
        f"{context['success_rate']} succeeded, {context['failed']} failed"
    )
    environment = _environment()
    html = environment.get_template("weekly.html.j2").render(subject=subject, **context)
    text = environment.get_template("weekly.txt.j2").render(subject=subject, **context)
    return subject, text, html
