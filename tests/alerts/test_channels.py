"""The alert channels against their local stand-ins, real servers on 127.0.0.1: PagerDuty Events API v2 through
`pagerduty.EventsApiV2Client`, a Slack incoming webhook through `slack_sdk`, email through `smtplib` to aiosmtpd.
What each service answers decides what the channel raises: retried and delivered once, refused for good
(`ChannelRefused`), or not now (`ChannelUnavailable`)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from eventstore.alerts.channels import (
    ChannelRefused,
    ChannelUnavailable,
    Email,
    PagerDuty,
    RetryPolicy,
    Slack,
    retry_after_seconds,
)
from eventstore_local.standins.pagerduty import PagerDutyStandIn, check_event
from eventstore_local.standins.slack import SlackWebhookStandIn
from eventstore_local.standins.smtp import SmtpStandIn

# Short waits so that backoff costs nothing; Retry-After, when a stand-in sends it, is still honoured.
QUICK = RetryPolicy(attempts=5, budget=20.0, initial_wait=0.01, max_wait=0.05)


@pytest.fixture
def pd() -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def paging() -> Iterator[Callable[..., PagerDuty]]:
    """Makes PagerDuty channels (`PagerDuty`'s arguments) and closes their connections after the test."""
    made: list[PagerDuty] = []

    def make(routing_key: str, base_url: str, retry: RetryPolicy = QUICK) -> PagerDuty:
        made.append(PagerDuty(routing_key, base_url=base_url, retry=retry))
        return made[-1]

    yield make
    for channel in made:
        channel.close()


@pytest.fixture
def slack_hook() -> Iterator[SlackWebhookStandIn]:
    with SlackWebhookStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def smtp() -> Iterator[SmtpStandIn]:
    with SmtpStandIn(listing_port=0) as stand_in:
        yield stand_in


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a stand-in on 127.0.0.1)
        return json.loads(response.read())


# -- PagerDuty ---------------------------------------------------------------------------------------------


def test_pagerduty_trigger_then_resolve_arrive_with_one_dedup_key(
    pd: PagerDutyStandIn, paging: Callable[..., PagerDuty]
) -> None:
    channel = paging(pd.routing_key, pd.base_url)
    links = [{"href": "http://127.0.0.1:7071/api/console/tenants/t1", "text": "Open in eventstore"}]

    channel.trigger("t1/failure-rate", "failure rate 40% over 60 min", "eventstore/t1", "error",
                    {"rate": 0.4, "executions": 50}, links)  # fmt: skip
    channel.resolve("t1/failure-rate")

    trigger, resolve = pd.wait_for(2)
    assert (trigger.action, resolve.action) == ("trigger", "resolve")
    assert trigger.dedup_key == resolve.dedup_key == "t1/failure-rate"
    assert trigger.event["payload"] == {
        "summary": "failure rate 40% over 60 min",
        "source": "eventstore/t1",
        "severity": "error",
        "custom_details": {"rate": 0.4, "executions": 50},
    }
    assert trigger.event["links"] == links
    assert "routing_key" not in trigger.event
    assert pd.statuses == [202, 202]
    listed = get_json(f"{pd.base_url}/received?after=0")
    assert [e["event"]["event_action"] for e in listed["events"]] == ["resolve"]
    assert listed["next"] == 2


def test_pagerduty_rate_limited_twice_then_delivered_once(
    pd: PagerDutyStandIn, paging: Callable[..., PagerDuty]
) -> None:
    pd.fail_next(2, status=429)
    paging(pd.routing_key, pd.base_url).trigger("k-429", "down", "eventstore", "critical")
    assert pd.statuses == [429, 429, 202]
    assert [e.dedup_key for e in pd.accepted] == ["k-429"]


def test_pagerduty_server_errors_retried_then_given_up_within_the_attempts(
    pd: PagerDutyStandIn, paging: Callable[..., PagerDuty]
) -> None:
    pd.fail_next(1, status=502)
    channel = paging(pd.routing_key, pd.base_url)
    channel.resolve("k-502")
    assert pd.statuses == [502, 202]

    pd.clear()
    pd.fail_next(10, status=503)
    three = paging(pd.routing_key, pd.base_url, RetryPolicy(3, 20.0, 0.01, 0.05))
    with pytest.raises(ChannelUnavailable) as caught:
        three.resolve("k-503")
    assert pd.statuses == [503, 503, 503]
    assert pd.accepted == []
    assert "503" in str(caught.value)


def test_pagerduty_retry_after_past_the_budget_is_handed_to_the_caller(
    pd: PagerDutyStandIn, paging: Callable[..., PagerDuty]
) -> None:
    pd.fail_next(1, status=429, retry_after=120)
    with pytest.raises(ChannelUnavailable) as caught:
        paging(pd.routing_key, pd.base_url).resolve("k-later")
    assert caught.value.retry_after == 120
    assert pd.statuses == [429]


def test_pagerduty_wrong_routing_key_is_refused_not_retried(
    pd: PagerDutyStandIn, paging: Callable[..., PagerDuty]
) -> None:
    with pytest.raises(ChannelRefused) as caught:
        paging("f" * 32, pd.base_url).trigger("k", "down", "eventstore", "error")
    assert caught.value.status == 400
    assert "Invalid routing key" in str(caught.value)
    assert pd.statuses == [400]
    assert pd.accepted == []


def test_pagerduty_invalid_trigger_is_refused(pd: PagerDutyStandIn, paging: Callable[..., PagerDuty]) -> None:
    with pytest.raises(ChannelRefused, match="severity"):
        paging(pd.routing_key, pd.base_url).trigger("k", "down", "eventstore", "fatal")


def test_pagerduty_unreachable_is_unavailable(paging: Callable[..., PagerDuty]) -> None:
    with PagerDutyStandIn() as gone:
        base_url, key = gone.base_url, gone.routing_key
    with pytest.raises(ChannelUnavailable, match="could not be reached"):
        paging(key, base_url, RetryPolicy(2, 5.0, 0.01, 0.05)).resolve("k")


def test_pagerduty_refuses_plain_http_beyond_this_machine() -> None:
    with pytest.raises(ValueError, match="https"):
        PagerDuty("k" * 32, base_url="http://events.pagerduty.com")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"routing_key": "short"}, "Length of 'routing_key' is incorrect"),
        ({"event_action": "explode"}, "'event_action' is invalid"),
        ({"dedup_key": "d" * 256}, "'dedup_key' is too long"),
        ({"payload": {"summary": "s" * 1025, "source": "x", "severity": "info"}}, "'payload.summary' is too long"),
        ({"payload": {"summary": "s", "severity": "info"}}, "'payload.source' is missing"),
        ({"event_action": "resolve", "dedup_key": None}, "'dedup_key' is missing"),
    ],
)
def test_pagerduty_stand_in_checks_events_like_pagerduty(change: dict[str, Any], error: str) -> None:
    key = "k" * 32
    event = valid_event(key) | change
    assert check_event({**event, **{k: v for k, v in valid_event(key).items() if k in change}}, key) == []
    assert any(error in e for e in check_event(event, key))


def valid_event(key: str) -> dict[str, Any]:
    return {"routing_key": key, "event_action": "trigger", "dedup_key": "d",
            "payload": {"summary": "s", "source": "x", "severity": "info"}}  # fmt: skip


# -- Slack -------------------------------------------------------------------------------------------------


def test_slack_two_posts_in_a_second_both_arrive_once(slack_hook: SlackWebhookStandIn) -> None:
    channel = Slack(slack_hook.url, retry=QUICK)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*dead letter* deal-42"}}]

    channel.post("first", blocks)
    channel.post("second")  # within Slack's one post per second: 429, Retry-After: 1, then taken

    assert slack_hook.texts == ["first", "second"]
    assert slack_hook.accepted[0].blocks == blocks
    assert slack_hook.statuses == [200, 429, 200]
    assert [p["post"]["text"] for p in get_json(slack_hook.url.split("/services")[0] + "/received")["posts"]] == [
        "first",
        "second",
    ]


def test_slack_server_error_then_ok(slack_hook: SlackWebhookStandIn) -> None:
    slack_hook.fail_next(1, status=500)
    Slack(slack_hook.url, retry=QUICK).post("after a 500")
    assert slack_hook.texts == ["after a 500"]
    assert slack_hook.statuses == [500, 200]


def test_slack_refusals_are_not_retried(slack_hook: SlackWebhookStandIn) -> None:
    with pytest.raises(ChannelRefused, match="no_service") as caught:
        Slack(slack_hook.url + "-revoked", retry=QUICK).post("to a webhook that is gone")
    assert caught.value.status == 404
    with pytest.raises(ChannelRefused, match="no_text"):
        Slack(slack_hook.url, retry=QUICK).post("   ")
    assert slack_hook.statuses == [400]
    assert slack_hook.accepted == []


def test_slack_down_for_longer_than_the_attempts_is_unavailable(slack_hook: SlackWebhookStandIn) -> None:
    slack_hook.fail_next(5, status=503)
    with pytest.raises(ChannelUnavailable):
        Slack(slack_hook.url, retry=RetryPolicy(2, 5.0, 0.01, 0.05)).post("lost for now")
    assert slack_hook.statuses == [503, 503]


# -- email -------------------------------------------------------------------------------------------------


def test_email_arrives_as_multipart_alternative(smtp: SmtpStandIn) -> None:
    channel = Email("127.0.0.1", smtp.port, "eventstore@example.com", starttls=False)
    channel.send(
        ["ops@example.com", "owner@example.com"],
        "Weekly summary: 3 tenants",
        "3 tenants, 1,204 messages.\n",
        "<html><body><p>3 tenants, <b>1,204</b> messages.</p></body></html>\n",
    )
    (message,) = smtp.wait_for(1)
    assert message.content_type == "multipart/alternative"
    assert message.subject == "Weekly summary: 3 tenants"
    assert message.from_ == "eventstore@example.com"
    assert message.to == ("ops@example.com", "owner@example.com")
    assert message.mail_from == "eventstore@example.com"
    assert message.rcpt_tos == ("ops@example.com", "owner@example.com")
    assert message.text == "3 tenants, 1,204 messages.\n"
    assert message.html == "<html><body><p>3 tenants, <b>1,204</b> messages.</p></body></html>\n"
    assert smtp.listing_url is not None
    assert [m["subject"] for m in get_json(smtp.listing_url)["messages"]] == ["Weekly summary: 3 tenants"]


def test_email_deferred_refused_and_misconfigured(smtp: SmtpStandIn) -> None:
    channel = Email("127.0.0.1", smtp.port, "eventstore@example.com", starttls=False)
    smtp.fail_next(1, "451 4.3.0 Try again later")
    with pytest.raises(ChannelUnavailable, match="451"):
        channel.send(["ops@example.com"], "s", "t")
    smtp.fail_next(1, "550 5.7.1 Relaying denied")
    with pytest.raises(ChannelRefused, match="550") as caught:
        channel.send(["ops@example.com"], "s", "t")
    assert caught.value.status == 550
    with pytest.raises(ChannelRefused, match="STARTTLS"):
        Email("127.0.0.1", smtp.port, "eventstore@example.com", starttls=True).send(["ops@example.com"], "s", "t")
    with_login = Email("127.0.0.1", smtp.port, "eventstore@example.com", username="u", password="p", starttls=False)  # noqa: S106
    with pytest.raises(ChannelRefused, match="AUTH"):
        with_login.send(["ops@example.com"], "s", "t")
    assert smtp.messages == []


def test_email_server_down_is_unavailable() -> None:
    with SmtpStandIn() as gone:
        port = gone.port
    with pytest.raises(ChannelUnavailable, match="could not be reached"):
        Email("127.0.0.1", port, "eventstore@example.com", starttls=False, timeout=5).send(["a@example.com"], "s", "t")


# -- Retry-After -------------------------------------------------------------------------------------------


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("1") == 1.0
    assert retry_after_seconds("Tue, 01 Dec 2026 09:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
