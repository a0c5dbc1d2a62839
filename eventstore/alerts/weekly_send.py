"""Sending the weekly summary: once per week, whoever runs the timer and however often. The week is claimed
in the control schema (`AlertReports`) before the report is built; sent, it is marked; a failed send gives
the claim back for the next run. Run by the weekly timer every hour (`EVENTSTORE_WEEKLY_SCHEDULE`): the first
run from Monday `EVENTSTORE_WEEKLY_HOUR` (08:00 UTC) on sends the week that ended, so a Monday when the app was
down or the send failed is made up by a later run."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from eventstore.alerts.channels import ChannelRefused, ChannelUnavailable
from eventstore.alerts.weekly import build_report, render, week_before
from eventstore.settings import Settings
from eventstore.store import EventStore

log = logging.getLogger(__name__)

CLAIM_SECONDS = 900.0
"""Longer than building a report over every tenant and sending it takes."""


class EmailChannel(Protocol):
    def send(self, to: list[str], subject: str, text: str, html: str) -> None: ...


def recipients(settings: Settings) -> list[str]:
    return [r.strip() for r in (settings.alert_email_to or "").split(",") if r.strip()]


def send_weekly(store: EventStore, settings: Settings, email: EmailChannel, now: datetime) -> bool:
    """Send the summary of the last whole week before `now` unless it was sent; True when this call sent it."""
    to = recipients(settings)
    if not to:
        return False
    start = week_before(now)
    if now < start + timedelta(days=7, hours=settings.weekly_hour):
        return False  # Monday, before the hour the summary is due
    reports = store.alert_reports
    if not reports.claim(start.date(), ", ".join(to), CLAIM_SECONDS):
        return False
    try:
        report = build_report(store, start, threshold=settings.alert_failure_rate)
        subject, text, html = render(report, settings.public_url)
        email.send(to, subject, text, html)
    except (ChannelUnavailable, ChannelRefused):
        log.exception("alerts: the weekly summary of %s was not sent; the next run tries again", start.date())
        reports.release(start.date())
        raise
    except Exception:
        reports.release(start.date())
        raise
    totals = report.totals()
    reports.mark_sent(
        start.date(),
        {"subject": subject, "messages": report.messages(), "failed": totals.failed, "succeeded": totals.succeeded},
    )
    log.info("alerts: the weekly summary of %s went to %s", start.date(), ", ".join(to))
    return True
