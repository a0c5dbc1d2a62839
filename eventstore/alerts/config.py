"""The alert channels the settings configure; a channel whose settings are missing is off."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from eventstore.alerts.acs_email import AcsEmail
from eventstore.alerts.channels import Email, PagerDuty, RetryPolicy, Slack
from eventstore.alerts.sender import Channels
from eventstore.settings import Settings

log = logging.getLogger(__name__)

TIMER_RETRY = RetryPolicy(attempts=3, budget=10.0)
"""A channel that is down holds a timer run for about this long at most; its notices wait for the next run."""


@dataclass
class AlertChannels(Channels):
    email: Email | AcsEmail | None = None


def channels_from_settings(settings: Settings) -> AlertChannels:
    key, slack = settings.pagerduty_routing_key, settings.slack_webhook_url
    return AlertChannels(
        pagerduty=PagerDuty(key.get_secret_value(), base_url=settings.pagerduty_url, retry=TIMER_RETRY)
        if key is not None
        else None,
        slack=Slack(slack.get_secret_value(), retry=TIMER_RETRY) if slack is not None else None,
        email=email_from_settings(settings),
    )


def email_from_settings(settings: Settings) -> Email | AcsEmail | None:
    """Azure Communication Services when either of its settings is there, else SMTP when its host is; nothing
    without a sender address. ACS wins over SMTP when both are set, so a deployment moves to ACS without having
    to clear its SMTP settings; of the two ACS settings, the connection string (key auth) wins over the endpoint."""
    sender = settings.alert_email_from
    if not sender:
        return None
    acs_key, acs_endpoint = settings.acs_email_connection_string, settings.acs_email_endpoint
    if acs_key is not None or acs_endpoint:
        try:
            if acs_key is not None:  # key auth; the connection string carries its own endpoint
                return AcsEmail(sender, connection_string=acs_key.get_secret_value(), retry=TIMER_RETRY)
            return AcsEmail(sender, endpoint=acs_endpoint, retry=TIMER_RETRY)
        except ValueError as error:
            # Left out rather than raised: a bad email setting must not take PagerDuty and Slack down with it.
            log.error("alerts: the ACS email settings are not usable, so no weekly email goes out: %s", error)
            return None
    if not settings.smtp_host:
        return None
    password = settings.smtp_password
    return Email(
        settings.smtp_host,
        settings.smtp_port,
        sender,
        username=settings.smtp_username,
        password=password.get_secret_value() if password is not None else None,
        starttls=settings.smtp_starttls,
    )
