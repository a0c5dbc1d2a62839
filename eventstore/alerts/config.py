"""The alert channels the settings configure; a channel whose settings are missing is off."""

from __future__ import annotations

from dataclasses import dataclass

from eventstore.alerts.channels import Email, PagerDuty, RetryPolicy, Slack
from eventstore.alerts.sender import Channels
from eventstore.settings import Settings

TIMER_RETRY = RetryPolicy(attempts=3, budget=10.0)
"""A channel that is down holds a timer run for about this long at most; its notices wait for the next run."""


@dataclass
class AlertChannels(Channels):
    email: Email | None = None


def channels_from_settings(settings: Settings) -> AlertChannels:
    key, slack, password = settings.pagerduty_routing_key, settings.slack_webhook_url, settings.smtp_password
    return AlertChannels(
        pagerduty=PagerDuty(key.get_secret_value(), base_url=settings.pagerduty_url, retry=TIMER_RETRY)
        if key is not None
        else None,
        slack=Slack(slack.get_secret_value(), retry=TIMER_RETRY) if slack is not None else None,
        email=Email(
            settings.smtp_host,
            settings.smtp_port,
            settings.alert_email_from,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            starttls=settings.smtp_starttls,
        )
        if settings.smtp_host and settings.alert_email_from
        else None,
    )
