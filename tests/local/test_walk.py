"""The README's second command: the sample walk sent over HTTP to the local host answers within seconds."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from eventstore_local.engine import LocalEngine
from eventstore_local.walk import send_deal_walk, send_walk
from tests.helpers import random_tenant_id


def test_the_sample_walk_records_and_queries_over_http(api_url: str) -> None:
    lines: list[str] = []
    send_walk(api_url, lines.append)
    text = "\n".join(lines)
    assert "GET .../state: paid (complete)" in text
    assert "7 triggers received" in text, text
    assert "dd65b766-f708-43a2-9184-1dd2e0d6270a, f591fa78-93da-47c4-91ed-bf334a540227" in text
    again: list[str] = []
    send_walk(api_url, again.append)
    assert sum("(already recorded)" in line for line in again) == 19


def test_the_walk_shows_a_failed_run_of_the_sample_engine(api_url: str, azurite: Any) -> None:
    queue = f"walk-{uuid4().hex[:12]}"
    with LocalEngine(api_url, azurite.connection_string, crm_port=0, email_port=0, queue=queue, backoff=0.01) as engine:
        lines: list[str] = []
        trace = send_deal_walk(
            api_url,
            storage=azurite.connection_string,
            email_url=engine.email.url,
            say=lines.append,
            queue=queue,
            tenant_id=random_tenant_id(),
        )
    text = "\n".join(lines)
    assert trace.status == "failed"
    assert "execution" in text and "succeeded" in text
    assert "failed at step send-email after 3 attempt(s)" in text
    assert [line.strip() for line in lines if "attempt " in line and ":" in line] == [
        f"attempt {n}: failed (500)" for n in (1, 2, 3)
    ]
    assert 'its input: {"to": "buyer@fabrikam.example"' in text
    assert "the destination answered 500: " in text and "MailboxUnavailable" in text
    assert ": failed, 1 execution(s)" in text
    assert engine.email.requests[-1].status == 500 and len(engine.email.requests) == 4  # 1 sent, 3 refused
