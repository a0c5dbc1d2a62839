"""`eventstore report failures` against the suite's local host over real HTTP: one tenant's days as a table
with exact figures, its top workflows and message types and the sparkline of the daily failure rate; the
deployment's report with a tenant that could not be counted named in a note; the app's refusals and an app
that does not answer are one error, never a traceback.

Run in this process through `report_commands.run` with the parser `add_arguments` builds (what `eventstore
report` runs once `cli.py` registers the command)."""

from __future__ import annotations

import argparse
import io
import json
import re
import socket
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import requests
from rich.console import Console

from eventstore import EventStore
from eventstore.views import FAILURE_COUNTS
from eventstore_local import report_commands
from eventstore_local.report_commands import ReportCommandFailed, add_arguments
from tests.helpers import random_tenant_id
from tests.http.client import envelope, native


def report(*argv: str) -> str:
    """`eventstore report <argv>`'s output (wide enough that no cell folds)."""
    parser = argparse.ArgumentParser(prog="eventstore report")
    add_arguments(parser)
    out = io.StringIO()
    assert report_commands.run(parser.parse_args(list(argv)), Console(file=out, width=240, color_system=None)) == 0
    return out.getvalue()


def onboarded(api_url: str) -> str:
    tenant = random_tenant_id()
    assert requests.put(f"{api_url}/tenants/{tenant}", timeout=30).status_code == 201
    return tenant


def run(api_url: str, tenant_id: str, workflow: str, outcome: str) -> None:
    """One execution of `workflow` for a `Submit` message, reported in one request."""
    instance = f"inst-{uuid4().hex[:8]}"
    body = envelope(tenant_id, properties={"WorkflowInstanceId": instance, "WorkflowId": workflow})
    answer = requests.post(
        f"{api_url}/tenants/{tenant_id}/messages", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 202, answer.text
    execution = f"exec-{uuid4().hex[:12]}"
    events = [("ExecutionStarted", {"executionId": execution, "messageEventId": answer.json()["eventId"]})]
    if outcome == "succeeded":
        events.append(("ExecutionCompleted", {"executionId": execution}))
    else:
        error = {"message": "mail answered 503", "statusCode": 503}
        events.append(
            ("ExecutionFailed", {"executionId": execution, "error": error, "deadLettered": outcome == "dead"})
        )
    batch = b"[" + b",".join(native(k, json.dumps(p).encode(), workflowId=workflow) for k, p in events) + b"]"
    answer = requests.post(
        f"{api_url}/tenants/{tenant_id}/instances/{instance}/events",
        data=batch,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text


def row(output: str, first: str) -> list[str]:
    """The cells of the table row that starts with `first`."""
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{output}")


def test_one_tenant_s_days_top_failures_and_sparkline(api_url: str) -> None:
    tenant_id = onboarded(api_url)
    for workflow, outcome in [("wf-orders", "succeeded")] * 3 + [("wf-orders", "failed"), ("wf-mail", "dead")]:
        run(api_url, tenant_id, workflow, outcome)
    asked = datetime.now(UTC).date()

    output = report("failures", "--tenant", tenant_id, "--days", "3", "--url", api_url)
    today = datetime.now(UTC).date()
    if today != asked:
        pytest.skip("the UTC day changed while the report ran")
    assert f"tenant {tenant_id}" in output
    assert row(output, today.isoformat()) == [today.isoformat(), "5", "3", "2", "1", "40.0%"]
    for earlier in (today - timedelta(days=1), today - timedelta(days=2)):
        assert row(output, earlier.isoformat()) == [earlier.isoformat(), "0", "0", "0", "0", "-"]
    assert row(output, "total") == ["total", "5", "3", "2", "1", "40.0%"]
    # Most failures first: wf-mail (1 of 1, dead-lettered) and wf-orders (1 of 4) fail once each.
    assert row(output, "wf-mail") == ["wf-mail", "1", "0", "1", "1", "100.0%"]
    assert row(output, "wf-orders") == ["wf-orders", "4", "3", "1", "0", "25.0%"]
    assert output.index("wf-mail") < output.index("wf-orders")
    assert row(output, "Submit") == ["Submit", "5", "3", "2", "1", "40.0%"]
    # Two days with nothing ended, then today's rate, the highest: full height.
    [line] = [line for line in output.splitlines() if line.startswith("daily failure rate")]
    assert f"{(today - timedelta(days=2)).isoformat()}..{today.isoformat()}: ··█ " in line
    assert "(highest 40.0%" in line


def test_the_deployment_report_names_a_tenant_it_could_not_count(api_url: str, store: EventStore) -> None:
    counted, held = onboarded(api_url), onboarded(api_url)
    run(api_url, counted, "wf-orders", "failed")
    run(api_url, held, "wf-orders", "succeeded")
    with store.views(held).session(FAILURE_COUNTS.name) as session:  # another runner holds its view
        assert session is not None
        output = report("failures", "--url", api_url)
    assert "every tenant" in output
    today = datetime.now(UTC).date().isoformat()
    started, succeeded, failed, dead = (int(n) for n in row(output, today)[1:5])
    assert started >= 1 and failed >= 1 and succeeded >= 0 and dead >= 0
    assert f"note: tenant {held} is not counted: " in output
    assert f"tenant {counted} is not counted" not in output
    assert re.search(r"daily failure rate \S+\.\.\S+: [▁▂▃▄▅▆▇█·]{7} ", output), output


def test_refusals_and_an_app_that_does_not_answer_are_one_error(api_url: str) -> None:
    with pytest.raises(ReportCommandFailed, match="not onboarded"):
        report("failures", "--tenant", random_tenant_id(), "--url", api_url)
    with pytest.raises(ReportCommandFailed, match="tenant"):
        report("failures", "--tenant", "not-a-tenant", "--url", api_url)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ReportCommandFailed, match="is the app running"):
        report("failures", "--url", f"http://127.0.0.1:{port}/api")
    with pytest.raises(SystemExit):
        report("failures", "--days", "0")
