"""The weekly email through Azure Communication Services Email: `AcsEmail` (the SDK's `EmailClient`) against the
local ACS Email stand-in, a real HTTPS server on 127.0.0.1 that checks the HMAC signature of every request as
the service does. Both parts arrive; a wrong key is refused; a rate limit is waited out and the email goes
once; the weekly summary chosen by the settings goes through ACS once however often its timer runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from eventstore import Settings
from eventstore.alerts import weekly
from eventstore.alerts.acs_email import AcsEmail
from eventstore.alerts.channels import ChannelRefused, ChannelUnavailable, Email, RetryPolicy
from eventstore.alerts.config import channels_from_settings, email_from_settings
from eventstore.alerts.weekly_send import send_weekly
from eventstore_local.standins.acs_email import AcsEmailStandIn
from tests.alerts.test_weekly import ALL_VIEWS, Week
from tests.views.test_traces import Timed, run_views, timed_store

SENDER = "eventstore@contoso.example"
QUICK = RetryPolicy(attempts=5, budget=20.0, initial_wait=0.01, max_wait=0.05)
WEEK = datetime(2032, 6, 14, tzinfo=UTC)
"""A Monday no other test reports on: the week is claimed once per database."""


@pytest.fixture
def acs() -> Iterator[AcsEmailStandIn]:
    with AcsEmailStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def channel(acs: AcsEmailStandIn) -> Iterator[Callable[..., AcsEmail]]:
    """Makes ACS channels to the stand-in, trusting its certificate, and closes them after the test."""
    made: list[AcsEmail] = []

    def make(connection_string: str | None = None, retry: RetryPolicy = QUICK) -> AcsEmail:
        made.append(
            AcsEmail(
                SENDER,
                connection_string=connection_string or acs.connection_string,
                retry=retry,
                poll_interval=0.05,
                connection_verify=acs.ca_file,
            )
        )
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.fixture(scope="module")
def timed(settings: Settings) -> Iterator[Timed]:
    yield from timed_store(settings)


def test_a_weekly_like_email_arrives_with_both_parts(acs: AcsEmailStandIn, channel: Callable[..., AcsEmail]) -> None:
    text = "Event store weekly summary\n\n  162 messages · 66.7 % succeeded ▼\n"
    html = '<html><body><h1>Weekly</h1><svg width="10"><rect/></svg><p>66.7 % &amp; more</p></body></html>'
    channel().send(["ops@contoso.example", "owner@contoso.example"], "Event store weekly summary ✓", text, html)
    [email] = acs.received
    assert (email.sender, email.to) == (SENDER, ("ops@contoso.example", "owner@contoso.example"))
    assert (email.subject, email.text, email.html) == ("Event store weekly summary ✓", text, html)
    assert acs.statuses == [202]


def test_a_wrong_access_key_is_refused_and_not_retried(acs: AcsEmailStandIn, channel: Callable[..., AcsEmail]) -> None:
    wrong = acs.connection_string.replace(acs.access_key, "bm90IHRoZSBrZXkgb2YgdGhpcyByZXNvdXJjZQ==")
    with pytest.raises(ChannelRefused) as refused:
        channel(wrong).send(["ops@contoso.example"], "Weekly", "text", "<p>html</p>")
    assert refused.value.status == 401 and "Denied" in str(refused.value)
    assert acs.statuses == [401] and acs.received == []


def test_rate_limited_then_delivered_once(acs: AcsEmailStandIn, channel: Callable[..., AcsEmail]) -> None:
    acs.fail_next(2, status=429, retry_after=0.2)
    channel().send(["ops@contoso.example"], "Weekly", "text", "<p>html</p>")
    assert acs.statuses == [429, 429, 202]
    [email] = acs.received
    assert email.subject == "Weekly"


def test_a_send_repeated_after_an_unknown_outcome_is_the_same_operation(
    acs: AcsEmailStandIn, channel: Callable[..., AcsEmail]
) -> None:
    """The same message again (a retry after a lost answer) names the same operation: delivered once."""
    email = channel()
    email.send(["ops@contoso.example"], "Weekly", "text", "<p>html</p>")
    email.send(["ops@contoso.example"], "Weekly", "text", "<p>html</p>")
    assert acs.statuses == [202, 202] and len(acs.received) == 1
    email.send(["ops@contoso.example"], "Weekly", "other text", "<p>html</p>")
    assert len(acs.received) == 2


def test_down_past_the_attempts_is_unavailable_with_retry_after(
    acs: AcsEmailStandIn, channel: Callable[..., AcsEmail]
) -> None:
    acs.fail_next(3, status=503, retry_after=0.1)
    with pytest.raises(ChannelUnavailable) as unavailable:
        channel(retry=RetryPolicy(attempts=3, budget=5.0, initial_wait=0.01, max_wait=0.05)).send(
            ["ops@contoso.example"], "Weekly", "text"
        )
    assert unavailable.value.retry_after == pytest.approx(0.1) and acs.statuses == [503, 503, 503]


def test_an_operation_that_ends_failed_is_refused(acs: AcsEmailStandIn, channel: Callable[..., AcsEmail]) -> None:
    acs.fail_operations_next(1)
    with pytest.raises(ChannelRefused, match="EmailDroppedAllRecipientsSuppressed"):
        channel().send(["ops@contoso.example"], "Weekly", "text")
    assert acs.received == []


def test_an_operation_still_running_after_the_wait_is_unavailable(acs: AcsEmailStandIn) -> None:
    """Accepted but not done in time: it may still go out, so not refused; a retry names the same operation."""
    acs.running_polls = 1_000_000
    with (
        AcsEmail(
            SENDER, connection_string=acs.connection_string, wait=0.3, poll_interval=0.05, connection_verify=acs.ca_file
        ) as slow,
        pytest.raises(ChannelUnavailable, match=r"is still Running after 0\.3 s"),
    ):
        slow.send(["ops@contoso.example"], "Weekly", "text")
    assert len(acs.received) == 1


def test_a_certificate_not_trusted_is_refused(acs: AcsEmailStandIn) -> None:
    with (
        AcsEmail(SENDER, connection_string=acs.connection_string, retry=QUICK) as untrusting,
        pytest.raises(ChannelRefused, match="certificate not trusted"),
    ):
        untrusting.send(["ops@contoso.example"], "Weekly", "text")
    assert acs.received == []


def test_the_settings_choose_acs_over_smtp(acs: AcsEmailStandIn, settings: Settings) -> None:
    smtp = settings.model_copy(update={"smtp_host": "127.0.0.1", "alert_email_from": SENDER})
    assert isinstance(email_from_settings(smtp), Email)
    both = smtp.model_copy(update={"acs_email_connection_string": SecretStr(acs.connection_string)})
    chosen = email_from_settings(both)
    assert isinstance(chosen, AcsEmail) and chosen.endpoint == acs.endpoint
    identity = smtp.model_copy(update={"acs_email_endpoint": "https://contoso.europe.communication.azure.com"})
    assert isinstance(email_from_settings(identity), AcsEmail)  # DefaultAzureCredential: nothing asked yet
    plain = smtp.model_copy(update={"acs_email_endpoint": "http://contoso.example"})
    assert email_from_settings(plain) is None  # refused and logged; the other channels still come up
    assert email_from_settings(both.model_copy(update={"alert_email_from": None})) is None


def test_the_weekly_summary_goes_through_acs_once_when_its_timer_runs_twice(
    acs: AcsEmailStandIn, settings: Settings, timed: Timed, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id = timed.tenant()
    week = Week(timed, tenant_id)
    for n in range(3):
        week.run(WEEK + timedelta(days=1, hours=n))
    error: dict[str, Any] = {"message": "CRM answered 500 for record 7", "statusCode": 500, "body": "oops"}
    week.run(WEEK + timedelta(days=2), fail_step="create-crm-record", error=error)
    run_views(timed.store, tenant_id, views=ALL_VIEWS)
    acs_settings = settings.model_copy(
        update={
            "acs_email_connection_string": SecretStr(acs.connection_string),
            "smtp_host": "192.0.2.1",  # configured too, and never reached: ACS wins
            "alert_email_from": SENDER,
            "alert_email_to": "ops@contoso.example, owner@contoso.example",
            "public_url": "https://eventstore.contoso.example",
        }
    )
    # The app's channel, as the settings build it, trusting the stand-in's CA through requests' own variable.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", acs.ca_file)
    now = WEEK + timedelta(days=7, hours=8)
    sent = []
    for _ in range(2):  # the timer twice (a retried run, a second instance)
        channels = channels_from_settings(acs_settings)
        assert isinstance(channels.email, AcsEmail)
        sent.append(send_weekly(timed.store, acs_settings, channels.email, now))
        channels.email.close()
    assert sent == [True, False]
    [email] = acs.received
    subject, text, html = weekly.render(
        weekly.build_report(timed.store, WEEK, threshold=acs_settings.alert_failure_rate), acs_settings.public_url
    )
    assert (email.subject, email.text, email.html) == (subject, text, html)
    assert email.to == ("ops@contoso.example", "owner@contoso.example")
    assert "2032-06-14" in subject and "4 messages" in subject and "<svg" in html
    assert "1 of 4 failed" in text and f"== Tenant {tenant_id} ==" in text
    assert "crm answered <n> for record <n>" in text and "crm answered &lt;n&gt; for record &lt;n&gt;" in html
