"""Failure categories: what varies between two reports of one problem (ids, numbers, quoted values, e-mail
addresses, query strings) is normalised away, what tells two problems apart (status, step, workflow,
message type, exception class) is kept, and the id is the same in another process."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from eventstore.alerts.categories import (
    Category,
    category_of,
    error_class,
    failures_url,
    normalise_message,
    replay_url,
)
from eventstore.views.traces import ExecutionRow, StepRow
from tests.helpers import PROJECT_ROOT

AT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


def execution(error: dict[str, object] | None = None, workflow: str | None = "deal-won-workflow") -> ExecutionRow:
    return ExecutionRow(
        execution_id=f"exec-{uuid4().hex}",
        message_event_id=uuid4(),
        operation_id=None,
        workflow_id=workflow,
        workflow_instance_id="deal-42",
        started_at=AT,
        completed_at=AT,
        status="failed",
        replay_of=None,
        error=json.dumps(error) if error is not None else None,
        dead_lettered=False,
        last_event_at=AT,
        replay_id=None,
    )


def failed_step(name: str, message: str, status: int | None = None, body: str | None = None) -> StepRow:
    error = json.dumps({"message": message, "statusCode": status, "body": body})
    return StepRow(
        step_id=str(uuid4()),
        execution_id="x",
        name=name,
        status="failed",
        attempts=3,
        idempotency_key=None,
        input=None,
        input_event_id=None,
        output=None,
        output_event_id=None,
        error=error,
        started_at=AT,
        completed_at=AT,
        first_at=AT,
        attempt_history="[]",
        skipped_for_execution_id=None,
        skipped_for_step_id=None,
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Deal 42 failed after 3 attempts", "deal 1337 failed after 12 attempts"),
        (
            "no record 7e7033bf-3e51-4df6-94d0-a51fc0f9afc3 in CRM",
            "no record 0c5d7e1a-1111-4222-8333-444455556666 in CRM",
        ),
        ("blob a94a8fe5ccb19ba61c4c0873d391e987 missing", "blob 5baa61e4c9b93f3f0682250b6cf8331b missing"),
        ("customer 'Contoso Ltd' not found", 'customer "Fabrikam" not found'),
        ("mail to buyer@contoso.example bounced", "mail to j.doe+deals@fabrikam.co.uk bounced"),
        (
            "GET https://crm.example/api/records?id=42&token=abc failed",
            "GET https://crm.example/api/records?id=7&token=xyz&page=2 failed",
        ),
        ("timeout   after\n 30.5 s", "Timeout after 2,000 s"),
    ],
)
def test_what_varies_between_reports_of_one_problem_is_normalised_away(first: str, second: str) -> None:
    assert normalise_message(first) == normalise_message(second)


def test_placeholders_and_limits() -> None:
    text = "Order 42 for 'Contoso' (7e7033bf-3e51-4df6-94d0-a51fc0f9afc3) at https://x.example/a?b=1 by a@b.example"
    assert normalise_message(text) == "order <n> for <str> (<uuid>) at https://x.example/a?<query> by <email>"
    # Words stay words: apostrophes are not quotes, and hex-looking words without a digit are not ids.
    assert normalise_message("can't reach the deadline, don't retry") == "can't reach the deadline, don't retry"
    assert len(normalise_message("x " * 500)) <= 200
    assert normalise_message(None) == "" and normalise_message("") == ""


def test_error_class() -> None:
    assert error_class("mail answered 503", 503) == "http 503"
    assert error_class("TimeoutError: the CRM did not answer", None) == "TimeoutError"
    assert error_class("requests.exceptions.ConnectionError: refused", None) == "requests.exceptions.ConnectionError"
    assert error_class("connect ECONNREFUSED 127.0.0.1:7073", None) == "ECONNREFUSED"
    assert error_class("something odd happened", None) == "unknown"


def test_one_problem_with_different_ids_is_one_category() -> None:
    categories = {
        category_of(
            execution(),
            failed_step("send-email", f"mail answered 503 for deal {n} (request {uuid4()})", 503, f'{{"retry": {n}}}'),
            "deal.won",
        )
        for n in range(50)
    }
    assert len(categories) == 1
    [category] = categories
    assert (category.message_type, category.workflow_id, category.step, category.error_class) == (
        "deal.won",
        "deal-won-workflow",
        "send-email",
        "http 503",
    )
    assert category.message == "mail answered <n> for deal <n> (request <uuid>)"
    assert len(category.category_id) == 16 and int(category.category_id, 16) >= 0


def test_what_tells_problems_apart_makes_another_category() -> None:
    base = category_of(execution(), failed_step("send-email", "mail refused", 503), "deal.won")
    others = [
        category_of(execution(), failed_step("send-email", "mail refused", 500), "deal.won"),  # status
        category_of(execution(), failed_step("create-crm-record", "mail refused", 503), "deal.won"),  # step
        category_of(execution(workflow="other"), failed_step("send-email", "mail refused", 503), "deal.won"),
        category_of(execution(), failed_step("send-email", "mail refused", 503), "order.paid"),  # message type
        category_of(execution(), failed_step("send-email", "mailbox full", 503), "deal.won"),  # message
    ]
    assert len({base.category_id, *(c.category_id for c in others)}) == 6


def test_an_execution_that_failed_outside_a_step_is_categorised_by_its_own_error() -> None:
    category = category_of(execution({"message": "TimeoutError: no answer in 30 s", "statusCode": None}), None, None)
    assert (category.step, category.error_class, category.message) == (
        None,
        "TimeoutError",
        "timeouterror: no answer in <n> s",
    )
    # No error at all is still a category (unknown), not a crash.
    assert category_of(execution(None), None, "deal.won").error_class == "unknown"


def test_the_id_is_the_same_in_another_process() -> None:
    category = Category(
        message_type="deal.won", workflow_id="w", step="send-email", error_class="http 503", message="down <n>"
    )
    code = (
        "from eventstore.alerts.categories import Category;"
        "print(Category(message_type='deal.won', workflow_id='w', step='send-email', error_class='http 503',"
        " message='down <n>').category_id)"
    )
    # Another interpreter, with another hash seed: the id must not depend on either.
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        env={"PYTHONHASHSEED": "12345"},
    )
    assert other.stdout.strip() == category.category_id
    assert category.model_dump()["category_id"] == category.category_id


def test_links_are_built_in_one_place() -> None:
    start, end = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
    assert failures_url("https://es.example/", "t1", start, end, category_id="abc") == (
        "https://es.example/api/console/tenants/t1/failures?category=abc"
        "&from=2026-11-09T00%3A00%3A00%2B00%3A00&to=2026-11-16T00%3A00%3A00%2B00%3A00"
    )
    replay = replay_url("https://es.example", "t1", start, end, message_type="deal.won", workflow_id="a&b")
    assert replay.startswith("https://es.example/api/console/tenants/t1/replays?status=failed&messageType=deal.won")
    assert "workflow=a%26b" in replay and replay.endswith("&dryrun=1")
