"""`eventstore report failures`: the failure rate per UTC day over the last days, for the whole deployment or
one tenant, as a table, the workflows and message types that failed most, and a one-line sparkline of the
daily failure rate.

An HTTP client of a running app, like `replay`: the deployment-wide report is `GET /metrics/failures`
(admin level: pass --key against Azure), a tenant's is `GET /tenants/{t}/metrics/failures`, summed here per
day, workflow and message type.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from eventstore.errors import EventStoreError
from eventstore_local.app_client import AppClient

if TYPE_CHECKING:  # imported where used: building the `eventstore` parser must stay cheap for every command
    from rich.console import Console

DEFAULT_URL = "http://127.0.0.1:7071/api"
REQUEST_TIMEOUT = 120.0
"""The deployment report reads every tenant: give it time."""
MAX_DAYS = 366
TOP = 10


class ReportCommandFailed(EventStoreError):
    """The app refused the request (its problem's detail), or could not be reached."""


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 1 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"--days must be between 1 and {MAX_DAYS} (got {value})")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`eventstore report`'s reports, on the parser `cli.py` made for it."""
    reports = parser.add_subparsers(dest="action", required=True)
    failures = reports.add_parser(
        "failures",
        help="failure rate per day (every tenant, or one): a table, the top failures and a sparkline",
    )
    failures.add_argument("--tenant", metavar="T", default=None, help="only this tenant (default: every tenant)")
    failures.add_argument(
        "--days", metavar="N", type=_days, default=7, help="the last N UTC days, today included (default %(default)s)"
    )
    failures.add_argument("--url", metavar="URL", default=DEFAULT_URL, help="the app's API (default %(default)s)")
    failures.add_argument(
        "--key",
        metavar="KEY",
        default=None,
        help="a key of the app, sent as x-functions-key (the deployment report is admin level)",
    )


# --- figures -----------------------------------------------------------------------------------------------


@dataclass
class Figures:
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    dead_lettered: int = 0

    def add(self, item: Mapping[str, Any]) -> None:
        self.started += int(item["started"])
        self.succeeded += int(item["succeeded"])
        self.failed += int(item["failed"])
        self.dead_lettered += int(item["deadLettered"])

    @property
    def failure_rate(self) -> float | None:
        ended = self.succeeded + self.failed
        return self.failed / ended if ended else None


@dataclass
class Report:
    """What is printed, from either route."""

    title: str
    days: dict[date, Figures]
    totals: Figures
    top_workflows: list[tuple[str | None, str | None, Figures]]
    """(tenant (None for one tenant's report), workflow, figures), most failures first."""
    top_message_types: list[tuple[str | None, str | None, Figures]]
    notes: list[str] = field(default_factory=list)


def _day_of(text: str) -> date:
    return datetime.fromisoformat(text).astimezone(UTC).date()


def _figures(item: Mapping[str, Any]) -> Figures:
    figures = Figures()
    figures.add(item)
    return figures


def _ranked(entries: Iterable[tuple[str | None, str | None, Figures]]) -> list[tuple[str | None, str | None, Figures]]:
    def order(entry: tuple[str | None, str | None, Figures]) -> tuple[int, int, int, str, str]:
        tenant, key, f = entry
        return (-f.failed, -f.dead_lettered, -f.started, tenant or "", key or "")

    return sorted(entries, key=order)[:TOP]


def deployment_report(document: Mapping[str, Any], start: date, days: int) -> Report:
    """The report of `GET /metrics/failures?granularity=day` over `days` days from `start`."""
    by_day = {start + timedelta(days=n): Figures() for n in range(days)}
    for bucket in document["buckets"]:
        by_day.setdefault(_day_of(bucket["start"]), Figures()).add(bucket)
    notes = [f"tenant {s['tenantId']} is not counted: {s['reason']}" for s in document["skipped"]]
    return Report(
        title=f"Failures, every tenant ({document['tenantsRead']} read), per UTC day",
        days=by_day,
        totals=_figures(document["totals"]),
        top_workflows=[(w["tenantId"], w["workflowId"], _figures(w)) for w in document["topWorkflows"]],
        top_message_types=[(m["tenantId"], m["messageType"], _figures(m)) for m in document["topMessageTypes"]],
        notes=notes,
    )


def tenant_report(tenant_id: str, document: Mapping[str, Any], start: date, days: int) -> Report:
    """The report of `GET /tenants/{t}/metrics/failures?granularity=day` (buckets per day, workflow and
    message type) over `days` days from `start`."""
    by_day = {start + timedelta(days=n): Figures() for n in range(days)}
    totals = Figures()
    workflows: dict[str | None, Figures] = defaultdict(Figures)
    types: dict[str | None, Figures] = defaultdict(Figures)
    for bucket in document["buckets"]:
        by_day.setdefault(_day_of(bucket["start"]), Figures()).add(bucket)
        totals.add(bucket)
        workflows[bucket["workflowId"]].add(bucket)
        types[bucket["messageType"]].add(bucket)
    notes = ["the app answered its first 10,000 buckets only: the figures are short"] if document["truncated"] else []
    return Report(
        title=f"Failures, tenant {tenant_id}, per UTC day",
        days=by_day,
        totals=totals,
        top_workflows=_ranked((None, k, f) for k, f in workflows.items()),
        top_message_types=_ranked((None, k, f) for k, f in types.items()),
        notes=notes,
    )


# --- output ------------------------------------------------------------------------------------------------


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def sparkline_of(report: Report) -> str:
    from eventstore.alerts.weekly import sparkline

    return sparkline([report.days[d].failure_rate for d in sorted(report.days)])


def _numbers(f: Figures) -> list[str]:
    return [str(f.started), str(f.succeeded), str(f.failed), str(f.dead_lettered), percent(f.failure_rate)]


def _top_table(title: str, what: str, entries: list[tuple[str | None, str | None, Figures]], tenants: bool) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    if tenants:
        table.add_column("tenant", overflow="fold")
    table.add_column(what, overflow="fold")
    for name in ("started", "succeeded", "failed", "dead-lettered", "failure rate"):
        table.add_column(name, justify="right")
    for tenant, key, figures in entries:
        table.add_row(*([tenant or ""] if tenants else []), key if key is not None else "(none)", *_numbers(figures))
    return table


def print_report(report: Report, console: Console, *, tenants: bool) -> None:
    from rich.table import Table

    console.print(report.title, markup=False, highlight=False)
    table = Table()
    table.add_column("day")
    for name in ("started", "succeeded", "failed", "dead-lettered", "failure rate"):
        table.add_column(name, justify="right")
    for day in sorted(report.days):
        table.add_row(day.isoformat(), *_numbers(report.days[day]))
    table.add_section()
    table.add_row("total", *_numbers(report.totals))
    console.print(table)
    if report.top_workflows:
        console.print(_top_table("Top workflows by failures", "workflow", report.top_workflows, tenants))
    if report.top_message_types:
        console.print(_top_table("Top message types by failures", "message type", report.top_message_types, tenants))
    rates = [report.days[d].failure_rate for d in sorted(report.days)]
    highest = max((r for r in rates if r is not None), default=None)
    first, last = min(report.days), max(report.days)
    console.print(
        f"daily failure rate {first.isoformat()}..{last.isoformat()}: {sparkline_of(report)}  "
        f"(highest {percent(highest)}; · nothing ended)",
        markup=False,
        highlight=False,
    )
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


# --- the app -----------------------------------------------------------------------------------------------


def _get(url: str, params: Mapping[str, str], key: str | None) -> Any:
    note = "the deployment report is admin level"
    with AppClient(url, key, timeout=REQUEST_TIMEOUT, admin_note=note, failure=ReportCommandFailed) as app:
        return app.call("GET", url, params=params)


def _instant(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def fetch_report(url: str, key: str | None, tenant_id: str | None, days: int, today: date) -> Report:
    """The last `days` UTC days up to `today` (included), from the app at `url`."""
    start = today - timedelta(days=days - 1)
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    params = {"granularity": "day", "from": _instant(begin), "to": _instant(begin + timedelta(days=days))}
    base = url.rstrip("/")
    try:
        if tenant_id is None:
            return deployment_report(_get(f"{base}/metrics/failures", params, key), start, days)
        path = f"{base}/tenants/{quote(tenant_id, safe='')}/metrics/failures"
        return tenant_report(tenant_id, _get(path, params, key), start, days)
    except (KeyError, TypeError, ValueError) as exc:  # another version of the app: say so, not a traceback
        raise ReportCommandFailed(f"the app answered a report this command does not know ({exc!r})") from exc


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """`eventstore report <report>`: the exit code (a refusal raises `ReportCommandFailed`)."""
    from rich.console import Console

    out = console or Console(highlight=False)
    report = fetch_report(args.url, args.key, args.tenant, args.days, datetime.now(UTC).date())
    print_report(report, out, tenants=args.tenant is None)
    return 0
