"""The console over real HTTP (the suite's local host, open access): each page answers HTML from the same
query functions as the JSON API; every value a client sent is escaped; unknown tenants and ids are 404 pages
and malformed filters 400 pages naming the field, never a stack trace; a replay asked from a message's page
is the API's operation, recorded with who asked, and only from the console's own pages."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlsplit
from uuid import uuid4

import azure.functions as func
import pytest

from eventstore import EventStore, EventType, NewEvent, Settings
from eventstore.console.access import ConsoleRefused, principal, same_origin
from eventstore.store import AUDIT_STREAM_ID, NewQueueDeadLetter
from tests.console.browser import SCRIPT, page
from tests.helpers import random_tenant_id
from tests.http.client import HttpApi
from tests.http.test_traces_api import execution, post_message, report


def test_the_tenant_picker_and_overview_answer_from_the_views(api: HttpApi, tenant: str) -> None:
    listed = page(api, "", q=tenant[:20])
    assert listed.status == 200 and f'/api/console/tenants/{tenant}"' in listed.body.decode()
    message = post_message(api, tenant, "deal-ov-1")
    report(api, tenant, execution("exec-ov-1", message, mail_fails_for_good=True), "deal-ov-1")
    overview = page(api, f"tenants/{tenant}")
    text = overview.body.decode()
    assert overview.status == 200, text
    assert re.search(r"Messages today \(UTC\)</dt><dd><a [^>]*>1</a>", text), text
    assert "100.0 %" in text  # the last hour: 1 of 1 executions failed
    assert overview.headers["content-security-policy"].startswith("default-src 'none'")


def test_messages_are_searched_filtered_and_paged_newest_first(api: HttpApi, tenant: str) -> None:
    ids = [post_message(api, tenant, f"deal-s-{n}") for n in range(3)]
    report(api, tenant, execution("exec-s-0", ids[0], mail_fails_for_good=True), "deal-s-0")
    found = page(api, f"tenants/{tenant}/messages")
    text = found.body.decode()
    assert found.status == 200 and "3 message(s) match" in text
    assert [text.index(i) for i in reversed(ids)] == sorted(text.index(i) for i in ids)  # newest first
    failed = page(api, f"tenants/{tenant}/messages", status="dead-lettered").body.decode()
    assert "1 message(s) match" in failed and ids[0] in failed and ids[1] not in failed
    later = page(api, f"tenants/{tenant}/messages", **{"from": "2999-01-01"}).body.decode()
    assert "0 message(s) match" in later


@pytest.mark.parametrize(
    ("params", "field"),
    [({"from": "yesterday"}, "from"), ({"status": "burning"}, "status"), ({"type": "Nope"}, "type"),
     ({"before": "not-a-cursor"}, "before"), ({"workflow": "a\u0001b"}, "workflow")],
)  # fmt: skip
def test_malformed_filters_are_a_page_naming_the_field(
    api: HttpApi, tenant: str, params: dict[str, str], field: str
) -> None:
    answer = page(api, f"tenants/{tenant}/messages", **params)
    assert answer.status == 400 and f"{field}" in answer.body.decode(), answer.body


def test_unknown_tenants_and_ids_are_404_pages(api: HttpApi, tenant: str) -> None:
    for path in (
        f"tenants/{random_tenant_id()}", f"tenants/{tenant}/messages/{uuid4()}", f"tenants/{tenant}/messages/nope",
        f"tenants/{tenant}/instances/never-was", f"tenants/{tenant}/executions/never-ran", "static/nothing.css",
    ):  # fmt: skip
        answer = page(api, path)
        assert answer.status == 404, (path, answer.body)
    assert page(api, "tenants/not%20a%20tenant%20id!").status in (400, 404)


def test_what_clients_sent_is_escaped_everywhere(api: HttpApi, tenant: str, store: EventStore) -> None:
    instance = f"inst-{SCRIPT}"
    message = post_message(api, tenant, instance)
    report(api, tenant, execution(f"exec-{SCRIPT}", message, mail_fails_for_good=True), instance)
    detail = page(api, f"tenants/{tenant}/messages/{message}").body.decode()
    timeline = page(api, f"tenants/{tenant}/instances/{quote(instance, safe='')}").body.decode()
    trace = page(api, f"tenants/{tenant}/executions/{quote(f'exec-{SCRIPT}', safe='')}").body.decode()
    for text in (detail, timeline, trace):
        assert "<script>" not in text and "&lt;script&gt;" in text, text[:2000]
    # A payload that is markup is shown as text, byte for byte.
    body = json.dumps({"note": SCRIPT, "workflowInstanceId": "x"}).encode()
    event = NewEvent(event_id=uuid4(), event_type=EventType.TRIGGER_RECEIVED, payload=body, workflow_id=SCRIPT)
    store.tenant(tenant).append(AUDIT_STREAM_ID, [event])
    shown = page(api, f"tenants/{tenant}/messages/{event.event_id}")
    assert shown.status == 200 and "<script>" not in shown.body.decode()


def test_a_large_payload_is_cut_with_a_download_of_the_whole(api: HttpApi, tenant: str, store: EventStore) -> None:
    body = json.dumps({"blob": "x" * 200_000}).encode()
    event = NewEvent(event_id=uuid4(), event_type=EventType.TRIGGER_RECEIVED, payload=body, workflow_id="big")
    store.tenant(tenant).append(AUDIT_STREAM_ID, [event])
    detail = page(api, f"tenants/{tenant}/messages/{event.event_id}")
    text = detail.body.decode()
    assert detail.status == 200 and "Download it whole" in text and len(detail.body) < 150_000
    download = api.get(f"console/tenants/{tenant}/messages/{event.event_id}/payload")
    assert download.status == 200 and download.body == body
    assert download.headers["content-disposition"] == f'attachment; filename="{event.event_id}.json"'


def test_a_replay_is_asked_only_from_the_consoles_own_pages_and_says_who(api: HttpApi, tenant: str) -> None:
    message = post_message(api, tenant, "deal-r-1")
    report(api, tenant, execution("exec-r-1", message, mail_fails_for_good=True), "deal-r-1")
    route = f"console/tenants/{tenant}/messages/{message}/replay"
    form = "reason=the+mail+service+is+back"
    forged = api.post(route, form.encode(), "application/x-www-form-urlencoded", Origin="https://evil.example")
    assert forged.status == 403
    origin = f"http://{api.host}:{api.port}"
    no_reason = api.post(route, b"reason=", "application/x-www-form-urlencoded", Origin=origin)
    assert no_reason.status == 400 and "reason" in no_reason.body.decode()
    asked = api.post(route, form.encode(), "application/x-www-form-urlencoded", Origin=origin)
    assert asked.status == 303, asked.body
    location = urlsplit(asked.headers["location"])
    job_id = location.query.removeprefix("replay=")
    job = api.get(f"tenants/{tenant}/replays/{job_id}").json()
    assert (job["requestedBy"], job["reason"]) == ("console (open access)", "the mail service is back"), job
    after = page(api, location.path.removeprefix("/api/console/"), replay=job_id).body.decode()
    assert "Replay asked" in after


def _request(method: str = "GET", **headers: str) -> func.HttpRequest:
    return func.HttpRequest(method, "http://127.0.0.1/api/console", headers=headers, body=b"")


def test_access_is_off_open_or_signed_in_with_entra(settings: Settings) -> None:
    with pytest.raises(ConsoleRefused) as off:
        principal(_request(), settings.model_copy(update={"console_access": "off"}))
    assert off.value.status == 403
    entra = settings.model_copy(update={"console_access": "entra"})
    with pytest.raises(ConsoleRefused) as anonymous:
        principal(_request(), entra)
    assert anonymous.value.status == 401
    assert anonymous.value.sign_in == "/.auth/login/aad?post_login_redirect_uri=%2Fapi%2Fconsole"
    assert principal(_request(**{"X-MS-CLIENT-PRINCIPAL-NAME": "ana@contoso.example"}), entra) == "ana@contoso.example"
    open_access = settings.model_copy(update={"console_access": "open"})
    assert principal(_request(), open_access) == "console (open access)"
    same_origin(_request("POST", **{"Sec-Fetch-Site": "same-origin"}))
    same_origin(_request("POST", Origin="http://127.0.0.1:7071", Host="127.0.0.1:7071"))
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example", "Host": "127.0.0.1"}, {}):
        with pytest.raises(ConsoleRefused):
            same_origin(_request("POST", **headers))


def test_queue_dead_letters_are_listed_escaped_and_redriven_with_who(
    api: HttpApi, tenant: str, store: EventStore
) -> None:
    body = json.dumps({"tenantId": tenant, "note": SCRIPT}).encode()
    letter = NewQueueDeadLetter(
        queue="workflow-messages-poison", message_id=str(uuid4()), body=body, base64=True, tenant_id=tenant,
        message_type="Submit", workflow_id=SCRIPT, reason=f"InvalidInput: {SCRIPT}", dequeue_count=5, queued_at=None,
    )  # fmt: skip
    letters = store.queue_dead_letters()
    letters.record(letter, [])
    [row] = letters.list(tenant_id=tenant)
    listed = page(api, f"tenants/{tenant}/dead-letters", messageId=letter.message_id)
    text = listed.body.decode()
    assert listed.status == 200 and f"{row.id} · Submit" in text and "<script>" not in text
    assert page(api, "dead-letters", queue="nope").status == 400
    origin = f"http://{api.host}:{api.port}"
    route = f"console/dead-letters/{row.id}/redrive"
    asked = api.post(route, b"reason=tenant+onboarded&back=tenant", "application/x-www-form-urlencoded", Origin=origin)
    assert asked.status == 303 and asked.headers["location"].endswith(
        f"/tenants/{tenant}/dead-letters?redriven={row.id}"
    )
    again = letters.get(row.id)
    assert again is not None and (again.redriven_by, again.redrive_reason) == (
        "console (open access)",
        "tenant onboarded",
    )
    assert api.post("console/dead-letters/999999999/redrive", b"reason=x", "application/x-www-form-urlencoded",
                    Origin=origin).status == 404  # fmt: skip


def test_an_erasure_is_dry_run_then_confirmed_and_recorded_with_who(api: HttpApi, tenant: str) -> None:
    message = post_message(api, tenant, "deal-gdpr-1")
    report(api, tenant, execution("exec-gdpr-1", message), "deal-gdpr-1")
    asked = {"kind": "instance", "value": "deal-gdpr-1", "reason": "GDPR request 7"}
    dry = page(api, f"tenants/{tenant}/erasures", **asked, dryrun="1")
    text = dry.body.decode()
    assert dry.status == 200 and re.search(r"<strong>\d+</strong> event\(s\) would be erased", text), text
    assert api.get(f"tenants/{tenant}/events/{message}").status == 200  # a dry run changes nothing
    origin = f"http://{api.host}:{api.port}"
    form = "kind=instance&value=deal-gdpr-1&reason=GDPR+request+7"
    route = f"console/tenants/{tenant}/erasures"
    unconfirmed = api.post(route, form.encode(), "application/x-www-form-urlencoded", Origin=origin)
    assert unconfirmed.status == 400 and "confirm" in unconfirmed.body.decode()
    done = api.post(route, (form + "&confirm=1").encode(), "application/x-www-form-urlencoded", Origin=origin)
    assert done.status == 303, done.body
    assert api.get(f"tenants/{tenant}/events/{message}").status == 410
    listed = page(api, f"tenants/{tenant}/erasures").body.decode()
    assert "console (open access)" in listed and "GDPR request 7" in listed and "deal-gdpr-1" not in listed
    bad = page(api, f"tenants/{tenant}/erasures", kind="value", value="x", paths="$.a\n$..b", reason="r", dryrun="1")
    assert bad.status == 400 and "paths (line 2)" in bad.body.decode()
