"""The console's replay and change-feed pages over real HTTP (the suite's local host, open access): a bulk
replay's dry run counts and plans without starting anything; Start is refused, readably, past the confirm
limit until the count is confirmed, and over messages another unfinished job holds; a started job shows its
progress live, who asked and why, and can be paused, resumed and cancelled, each change recorded with the
operator; changes come only from the console's own pages; bad input is a 400 page naming the field and
unknown jobs are 404 pages. The feed page shows the host's sink and its dead letters."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import pytest

from eventstore import EventStore
from eventstore.feed.sinks import EVENT_GRID_SINK
from eventstore.models import START
from eventstore.store import AUDIT_STREAM_ID, DeadLetter
from tests.console.browser import SCRIPT, page
from tests.helpers import dead_letter, random_tenant_id, read_feed, settle
from tests.http.client import HttpApi, Response
from tests.http.test_traces_api import execution, post_message, report

WHO = "console (open access)"
"""Who the suite's host (open access) records as asking."""


def submit(api: HttpApi, route: str, fields: dict[str, str], origin: str | None = None) -> Response:
    """A console form posted as a browser posts it from the console's own page (or from `origin`)."""
    answer = api.post(
        f"console/{route}", urlencode(fields).encode(), "application/x-www-form-urlencoded",
        Origin=origin or f"http://{api.host}:{api.port}",
    )  # fmt: skip
    assert "Traceback" not in answer.body.decode()
    return answer


def failed_messages(api: HttpApi, tenant_id: str, count: int) -> list[str]:
    """`count` messages whose execution failed for good (dead-lettered by the engine)."""
    ids = []
    for n in range(count):
        message = post_message(api, tenant_id, f"deal-b-{n}")
        report(api, tenant_id, execution(f"exec-b-{n}", message, mail_fails_for_good=True), f"deal-b-{n}")
        ids.append(message)
    return ids


def problem(answer: Response) -> str:
    """The detail an error page says."""
    found = re.search(r'<div class="problem" role="alert">\s*<p><strong>\d+</strong> (.*?)</p>', answer.body.decode())
    assert found, answer.body.decode()
    return found.group(1)


def jobs(api: HttpApi, tenant_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"tenants/{tenant_id}/replays").json()["jobs"])


def test_a_dry_run_counts_and_plans_and_starts_nothing(api: HttpApi, tenant: str) -> None:
    failed = failed_messages(api, tenant, 3)
    fine = post_message(api, tenant, "deal-fine")
    report(api, tenant, execution("exec-fine", fine), "deal-fine")
    shown = page(api, f"tenants/{tenant}/replays", status="dead-lettered", dryrun="1")
    text = shown.body.decode()
    assert shown.status == 200, text
    assert "<strong>3</strong> message(s) match" in text
    assert all(m in text for m in failed) and fine not in text
    # The plan: the CRM record succeeded (skipped by a replay), the email never did (runs again).
    assert 'create-crm-record <span class="badge skipped">skip</span>' in text, text
    assert 'send-email <span class="badge">run</span>' in text, text
    # More than the host's limit of 2: the Start form asks to confirm the count, the filter carried along.
    assert re.search(r'name="confirm" value="1" required> I checked the count: 3 message', text), text
    assert '<input type="hidden" name="status" value="dead-lettered">' in text
    assert jobs(api, tenant) == []
    # Without dryrun the form and the history only.
    assert "Dry run</h2>" not in page(api, f"tenants/{tenant}/replays", status="dead-lettered").body.decode()


def test_a_bulk_replay_starts_only_confirmed_and_shows_its_progress_and_who_asked(
    api: HttpApi, tenant: str, store: EventStore
) -> None:
    failed_messages(api, tenant, 3)
    route = f"tenants/{tenant}/replays"
    # rate 0.01/s: one message goes at once, the next in 100 s, so the job is still running while looked at.
    fields = {"status": "dead-lettered", "reason": f"mail is back {SCRIPT}", "rate": "0.01"}
    refused = submit(api, route, fields)
    text = refused.body.decode()
    assert refused.status == 409, text
    assert "matches 3 messages, more than 2 may be replayed without confirming" in text
    assert "<strong>3</strong> message(s) match" in text  # the count again, to confirm
    assert jobs(api, tenant) == []

    started = submit(api, route, {**fields, "confirm": "1"})
    assert started.status == 303, started.body
    location = started.headers["location"]
    job_id = location.rsplit("/", 1)[1]
    assert location == f"/api/console/tenants/{tenant}/replays/{job_id}"
    [job] = jobs(api, tenant)
    assert (job["jobId"], job["requestedBy"], job["matched"]) == (job_id, WHO, 3)
    recorded = api.get(f"tenants/{tenant}/replays/{job_id}").json()
    assert recorded["filter"] == {"status": "dead-lettered"} and recorded["rate"] == 0.01, recorded

    shown = page(api, f"{route}/{job_id}").body.decode()
    assert re.search(r'<progress id="sent-bar" value="[0-3]" max="3">', shown), shown
    assert WHO in shown and "mail is back" in shown and "<script>" not in shown
    assert "<dt>status</dt><dd>dead-lettered</dd>" in shown
    assert '<meta http-equiv="refresh" content="2">' in shown  # running: live
    assert '<meta http-equiv="refresh"' not in page(api, f"{route}/{job_id}", live="0").body.decode()

    history = page(api, route).body.decode()
    assert f'href="/api/console/{route}/{job_id}"' in history and WHO in history and "<script>" not in history
    assert re.search(r'<progress value="[0-3]" max="3"', history), history

    overlap = submit(api, route, {**fields, "confirm": "1"})
    assert overlap.status == 409 and "already being replayed" in overlap.body.decode(), overlap.body
    assert f'<li><a href="/api/console/{route}/{job_id}">{job_id}</a></li>' in overlap.body.decode()
    assert len(jobs(api, tenant)) == 1

    other = random_tenant_id()
    assert api.request("PUT", f"tenants/{other}").status == 201
    assert page(api, f"tenants/{other}/replays/{job_id}").status == 404  # another tenant's job is not there
    requested = [json.loads(e.payload or b"{}") for e in store.tenant(tenant).read_stream(AUDIT_STREAM_ID)
                 if e.event_type == "ReplayRequested"]  # fmt: skip
    assert [(r["jobId"], r["requestedBy"], r["matched"]) for r in requested] == [(job_id, WHO, 3)]


def test_a_job_is_paused_resumed_and_cancelled_by_the_operator(api: HttpApi, tenant: str, store: EventStore) -> None:
    failed_messages(api, tenant, 2)
    route = f"tenants/{tenant}/replays"
    started = submit(api, route, {"status": "dead-lettered", "reason": "mail is back", "rate": "0.01"})
    assert started.status == 303, started.body  # 2 messages: under the limit, no confirm needed
    job = f"{route}/{started.headers['location'].rsplit('/', 1)[1]}"

    def state() -> str:
        return str(api.get(job).json()["state"])

    paused = submit(api, f"{job}/pause", {"reason": "checking the router"})
    assert (paused.status, paused.headers["location"]) == (303, f"/api/console/{job}")
    assert state() == "paused"
    shown = page(api, job).body.decode()
    assert '<span class="badge paused">paused</span> <small>(checking the router)</small>' in shown
    assert "Resume</button>" in shown and "Pause</button>" not in shown
    assert submit(api, f"{job}/resume", {"reason": ""}).status == 303 and state() == "running"
    assert submit(api, f"{job}/cancel", {"reason": "wrong filter"}).status == 303 and state() == "cancelled"
    ended = page(api, job).body.decode()
    assert "cancelled</span>" in ended and "Cancel the job" not in ended and 'http-equiv="refresh"' not in ended
    again = submit(api, f"{job}/cancel", {})
    assert again.status == 409 and "it cannot become cancelled" in problem(again)
    changes = [json.loads(e.payload or b"{}") for e in store.tenant(tenant).read_stream(AUDIT_STREAM_ID)
               if e.event_type == "ReplayJobChanged"]  # fmt: skip
    assert [(c["state"], c["by"], c["reason"]) for c in changes] == [
        ("paused", WHO, "checking the router"), ("running", WHO, None), ("cancelled", WHO, "wrong filter"),
    ]  # fmt: skip
    assert page(api, f"{route}/{uuid4()}").status == page(api, f"{route}/not-a-job").status == 404
    assert submit(api, f"{route}/{uuid4()}/pause", {}).status == 404


def test_a_change_is_asked_only_from_the_consoles_own_pages(api: HttpApi, tenant: str) -> None:
    failed_messages(api, tenant, 1)
    fields = {"status": "dead-lettered", "reason": "forged"}
    for route in (f"tenants/{tenant}/replays", f"tenants/{tenant}/replays/{uuid4()}/cancel"):
        assert submit(api, route, fields, origin="https://evil.example").status == 403
        unsigned = api.post(f"console/{route}", urlencode(fields).encode(), "application/x-www-form-urlencoded")
        assert unsigned.status == 403
    assert jobs(api, tenant) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"), ({"status": "burning"}, "status"),
     ({"type": "Nope"}, "type"), ({"workflow": "a\u0001b"}, "workflow"), ({"jobs_before": "nope"}, "jobs_before")],
)  # fmt: skip
def test_a_malformed_filter_is_a_page_naming_the_field(
    api: HttpApi, tenant: str, params: dict[str, str], field: str
) -> None:
    answer = page(api, f"tenants/{tenant}/replays", dryrun="1", **params)
    assert answer.status == 400 and problem(answer).startswith(f"{field}"), answer.body


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"rate": "fast"}, "rate"), ({"rate": "0"}, "rate"), ({"reason": " "}, "reason"), ({"from": "soon"}, "from"),
     ({"status": "burning"}, "status")],
)  # fmt: skip
def test_a_malformed_start_is_a_page_naming_the_field(
    api: HttpApi, tenant: str, fields: dict[str, str], field: str
) -> None:
    answer = submit(api, f"tenants/{tenant}/replays", {"status": "failed", "reason": "why", "confirm": "1", **fields})
    assert answer.status == 400 and problem(answer).startswith(f"{field}"), answer.body
    assert jobs(api, tenant) == []


def test_nothing_to_replay_is_a_page_that_says_so(api: HttpApi, tenant: str) -> None:
    answer = submit(api, f"tenants/{tenant}/replays", {"workflow": "no-such-workflow", "reason": "why"})
    assert answer.status == 422 and "No message matches the filter: nothing was started." in answer.body.decode()


def test_the_feed_page_shows_the_sinks_and_their_dead_letters_and_redrives_them(
    api: HttpApi, tenant: str, store: EventStore
) -> None:
    post_message(api, tenant, "deal-feed-1")
    clean = page(api, f"tenants/{tenant}/feed")
    text = clean.body.decode()
    assert clean.status == 200, text
    assert f"<td>{EVENT_GRID_SINK}</td>" in text and "None waiting: every sink took every event" in text
    settle(store, store.tenant(tenant))
    entry = read_feed(store.feed(tenant), START, 10)[0]
    dead_letter(store, tenant, EVENT_GRID_SINK, [DeadLetter(entry, 400, "the topic refused <it>")])
    shown = page(api, f"tenants/{tenant}/feed").body.decode()
    assert "1 event(s) were refused by a sink" in shown and str(entry.event_id) in shown
    assert "the topic refused &lt;it&gt;" in shown and f"Redrive 1 to {EVENT_GRID_SINK}" in shown
    route = f"console/tenants/{tenant}/feed/{EVENT_GRID_SINK}/redrive"
    assert api.post(route, b"", "application/x-www-form-urlencoded", Origin="https://evil.example").status == 403
    origin = f"http://{api.host}:{api.port}"
    # The host's feed timer (or the message's nudge) may hold the sink at that moment: the page then says
    # "busy" and the operator presses again, as here.
    deadline = time.monotonic() + 30
    while True:
        redriven = api.post(route, b"", "application/x-www-form-urlencoded", Origin=origin)
        if "redriven=busy" not in redriven.headers.get("location", "") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert redriven.status == 303 and "redriven=1-0" in redriven.headers["location"], redriven.headers
    after = page(api, f"tenants/{tenant}/feed").body.decode()
    assert "None waiting" in after
    history = page(api, f"tenants/{tenant}/feed", all="1").body.decode()
    assert "by console (open access)" in history and str(entry.event_id) in history
    unknown = api.post(f"console/tenants/{tenant}/feed/nope/redrive", b"", "application/x-www-form-urlencoded",
                       Origin=origin)  # fmt: skip
    assert unknown.status == 404
    assert page(api, f"tenants/{random_tenant_id()}/feed").status == 404
