"""`eventstore alerts watch`: print what the local alert receivers `eventstore host` starts take in (PagerDuty
events, Slack posts, emails), as it arrives."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import requests

DEFAULT_PAGERDUTY, DEFAULT_SLACK, DEFAULT_SMTP = (
    "http://127.0.0.1:7075",
    "http://127.0.0.1:7076",
    "http://127.0.0.1:7078",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    watch = actions.add_parser("watch", help="print what the local PagerDuty, Slack and SMTP receivers take in")
    watch.add_argument("--pagerduty", default=DEFAULT_PAGERDUTY, help="the PagerDuty receiver (default %(default)s)")
    watch.add_argument("--slack", default=DEFAULT_SLACK, help="the Slack receiver (default %(default)s)")
    watch.add_argument("--smtp", default=DEFAULT_SMTP, help="the SMTP receiver's listing (default %(default)s)")
    watch.add_argument("--from-start", action="store_true", help="also print what arrived before")


def received_page(url: str, after: int) -> dict[str, Any] | None:
    try:
        answer = requests.get(f"{url.rstrip('/')}/received", params={"after": str(after)}, timeout=5)
        answer.raise_for_status()
    except requests.RequestException:
        return None  # that receiver is not running (a real channel is configured): nothing to show
    page: dict[str, Any] = answer.json()
    return page


def pagerduty_line(item: dict[str, Any]) -> str:
    event = item["event"]
    summary = (event.get("payload") or {}).get("summary", "")
    return f"{item['receivedAt']}  PagerDuty {event.get('event_action')}  {event.get('dedup_key')}  {summary}"


def slack_line(item: dict[str, Any]) -> str:
    return f"{item['receivedAt']}  Slack  {(item.get('post') or {}).get('text', '')}"


def _email(item: dict[str, Any]) -> str:
    return f"{item['receivedAt']}  email to {', '.join(item.get('rcptTos', []))}  {item.get('subject', '')}"


def watch(pagerduty: str, slack: str, smtp: str, from_start: bool, say: Callable[[str], None] = print) -> None:
    receivers = ((pagerduty, "events", pagerduty_line), (slack, "posts", slack_line), (smtp, "messages", _email))
    after = {url: -1 for url, _, _ in receivers}
    if not from_start:
        for url, _, _ in receivers:
            page = received_page(url, 2**62)
            after[url] = page["next"] - 1 if page else -1
    while True:
        for url, member, line in receivers:
            page = received_page(url, after[url])
            if page is None:
                continue
            for item in page[member]:
                say(line(item))
            after[url] = page["next"] - 1
        time.sleep(0.5)
