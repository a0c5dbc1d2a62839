"""Sends what a tenant's outbox holds, each notice once: PagerDuty events in the order they were queued (a
resolve never overtakes its trigger), Slack posts one by one at the webhook's pace, or, when more than
`EVENTSTORE_SLACK_SUMMARY_OVER` are due at once, one summary post for all of them. A channel that is down
holds its notices with a backoff; one that refuses them for good keeps them, with the error, as refused.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from eventstore.alerts.categories import admin_url, deployment_url
from eventstore.alerts.channels import ChannelRefused, ChannelUnavailable
from eventstore.settings import Settings
from eventstore.store import AlertOutbox, EventStore, OutboxRow

log = logging.getLogger(__name__)

CLAIM_SECONDS = 120.0
"""How long a sender holds the notices it claimed: longer than a channel's retries take."""
SUMMARY_LIMIT = 10_000
MAX_ATTEMPTS = 10
"""A notice that fails for no channel reason this many times is refused (shown with its error in health)."""


class PagerDutyChannel(Protocol):
    def trigger(
        self,
        dedup_key: str,
        summary: str,
        source: str,
        severity: str,
        custom_details: dict[str, Any],
        links: list[dict[str, str]],
    ) -> None: ...

    def resolve(self, dedup_key: str) -> None: ...


class SlackChannel(Protocol):
    def post(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None: ...


@dataclass
class Channels:
    """The channels configured; None: that channel is off and its notices wait (none are queued for it)."""

    pagerduty: PagerDutyChannel | None = None
    slack: SlackChannel | None = None


def backoff(attempts: int) -> float:
    return float(min(5.0 * 2 ** min(attempts, 10), 900.0))


class Sender:
    def __init__(
        self,
        store: EventStore,
        settings: Settings,
        channels: Channels,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.channels = channels
        self.clock = clock

    def send_tenant(self, alerts: AlertOutbox) -> int:
        """Send what is due in a tenant's outbox (or the deployment's); how many notices went out."""
        sent = 0
        if self.channels.pagerduty is not None:
            sent += self._pagerduty(alerts, self.channels.pagerduty)
        if self.channels.slack is not None:
            sent += self._slack(alerts, self.channels.slack)
        return sent

    # -- PagerDuty -----------------------------------------------------------------------------------------

    def _pagerduty(self, alerts: AlertOutbox, channel: PagerDutyChannel) -> int:
        # One at a time: a send may take the channel's whole retry budget, and a claim must outlast what it covers.
        sent = 0
        owner = alerts.tenant_id or "deployment"
        while rows := alerts.claim("pagerduty", 1, CLAIM_SECONDS):
            [row] = rows
            body = row.body
            try:
                if row.kind == "resolve":
                    channel.resolve(body["dedup_key"])
                else:  # a failure-rate trigger carries its own event; a notice (a fault) is made one
                    channel.trigger(
                        body["dedup_key"], body["summary"], body.get("source", f"eventstore/{owner}"),
                        body.get("severity", self.settings.alert_severity),
                        body.get("custom_details", body.get("fields", {})), body.get("links", []),
                    )  # fmt: skip
            except ChannelUnavailable as exc:  # PagerDuty is down: the others wait for the next run
                self._failed(alerts, [row], exc)
                return sent
            except ChannelRefused as exc:
                log.error("alerts: PagerDuty refused %s for good: %s", row.notice_key, exc)
                alerts.mark_refused([row.id], str(exc))
                continue
            except Exception as exc:  # anything else: held like an outage, refused once it keeps happening
                self._broken(alerts, row, exc)
                return sent
            alerts.mark_sent([row.id], "single")
            sent += 1
        return sent

    # -- Slack ---------------------------------------------------------------------------------------------

    def _slack(self, alerts: AlertOutbox, channel: SlackChannel) -> int:
        if alerts.due("slack") > self.settings.slack_summary_over:
            rows = alerts.claim("slack", SUMMARY_LIMIT, CLAIM_SECONDS)
            if len(rows) > self.settings.slack_summary_over:
                return self._summary(alerts, channel, rows)
            alerts.release([r.id for r in rows], self.clock())
        sent = 0
        while rows := alerts.claim("slack", 1, CLAIM_SECONDS):
            [row] = rows
            text, blocks = slack_message(row, alerts.tenant_id, self.settings)
            try:
                channel.post(text, blocks)
            except ChannelUnavailable as exc:  # Slack is down: the others wait for the next run
                self._failed(alerts, [row], exc)
                return sent
            except ChannelRefused as exc:
                log.error("alerts: Slack refused %s for good: %s", row.notice_key, exc)
                alerts.mark_refused([row.id], str(exc))
                continue
            except Exception as exc:
                self._broken(alerts, row, exc)
                return sent
            alerts.mark_sent([row.id], "single")
            sent += 1
        return sent

    def _summary(self, alerts: AlertOutbox, channel: SlackChannel, rows: Sequence[OutboxRow]) -> int:
        text, blocks = slack_summary(rows, alerts.tenant_id, self.settings)
        try:
            channel.post(text, blocks)
        except ChannelUnavailable as exc:
            self._failed(alerts, rows, exc)
            return 0
        except ChannelRefused as exc:  # the summary itself was refused: the notices go one by one next time
            log.error("alerts: Slack refused a summary of %d notices: %s", len(rows), exc)
            alerts.release([r.id for r in rows], self.clock())
            return 0
        except Exception:
            log.exception("alerts: a summary of %d notices could not be posted", len(rows))
            alerts.release([r.id for r in rows], self._later(0))
            return 0
        alerts.mark_sent([r.id for r in rows], f"summary of {len(rows)}")
        return len(rows)

    # -- common --------------------------------------------------------------------------------------------

    def _broken(self, alerts: AlertOutbox, row: OutboxRow, exc: Exception) -> None:
        """A notice that made sending fail in a way no channel reports (a bug, a malformed body): held with its
        error like an outage, and refused once it has failed `MAX_ATTEMPTS` times, so it never blocks the
        notices after it for good."""
        log.exception("alerts: notice %s of tenant %s could not be sent", row.notice_key, alerts.tenant_id)
        if row.attempts + 1 >= MAX_ATTEMPTS:
            alerts.mark_refused([row.id], f"{type(exc).__name__}: {exc}")
        else:
            alerts.mark_failed([row.id], f"{type(exc).__name__}: {exc}", self._later(row.attempts))

    def _later(self, attempts: int) -> datetime:
        return self.clock() + timedelta(seconds=backoff(attempts))

    def _failed(self, alerts: AlertOutbox, rows: Sequence[OutboxRow], exc: Exception) -> datetime:
        """Hold `rows` for their next attempt (the channel's Retry-After when it gave one); when that is."""
        log.warning("alerts: %d notice(s) of tenant %s not sent, held: %s", len(rows), alerts.tenant_id, exc)
        retry_after = getattr(exc, "retry_after", None)
        when = self.clock() + timedelta(seconds=retry_after) if retry_after else self._later(rows[0].attempts)
        alerts.mark_failed([r.id for r in rows], str(exc), when)
        return when


def admin_link(settings: Settings, tenant_id: str | None, page: str = "") -> str:
    """A tenant's admin page, or the deployment's when `tenant_id` is None."""
    if tenant_id is None:
        return deployment_url(settings.public_url, page, {}).rstrip("/")
    return admin_url(settings.public_url, tenant_id, page, {}).rstrip("/")


def _buttons(links: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [
        {"type": "button", "text": {"type": "plain_text", "text": link["text"][:75]}, "url": link["href"]}
        for link in links[:5]
    ]


def slack_message(row: OutboxRow, tenant_id: str | None, settings: Settings) -> tuple[str, list[dict[str, Any]]]:
    """One notice as a Slack post: its text (the notification's fallback) and Block Kit blocks."""
    body = row.body
    text = str(body.get("summary") or row.kind)[:2900]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    fields = [
        {"type": "mrkdwn", "text": f"*{name}*\n{value}"}
        for name, value in body.get("fields", {}).items()
        if value not in (None, "")
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    links = body.get("links") or [{"href": admin_link(settings, tenant_id), "text": "Open in eventstore"}]
    blocks.append({"type": "actions", "elements": _buttons(links)})
    return text, blocks


def slack_summary(
    rows: Sequence[OutboxRow], tenant_id: str | None, settings: Settings
) -> tuple[str, list[dict[str, Any]]]:
    """Many notices at once as one post: counts by kind and the top groups, and a link."""
    kinds = Counter(r.kind for r in rows)
    groups = Counter(str(r.body.get("group") or r.body.get("summary") or r.kind)[:120] for r in rows)
    whose = f"tenant {tenant_id}" if tenant_id is not None else "the deployment"
    text = f"{len(rows)} notices for {whose}: " + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
    top = "\n".join(f"• {n}x {g}" for g, n in groups.most_common(5))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"Most frequent:\n{top}"[:2900]}},
        {
            "type": "actions",
            "elements": _buttons([{"href": admin_link(settings, tenant_id), "text": "Open in eventstore"}]),
        },
    ]
    return text, blocks
