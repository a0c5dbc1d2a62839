"""The README's second command: the sample walk sent over HTTP to the local host answers within seconds."""

from __future__ import annotations

from eventstore_local.walk import send_walk


def test_the_sample_walk_records_and_queries_over_http(api_url: str) -> None:
    lines: list[str] = []
    send_walk(api_url, lines.append)
    text = "\n".join(lines)
    assert "GET .../state: paid (complete)" in text
    assert "7 triggers received" in text
    assert "dd65b766-f708-43a2-9184-1dd2e0d6270a, f591fa78-93da-47c4-91ed-bf334a540227" in text
    again: list[str] = []
    send_walk(api_url, again.append)
    assert sum("(already recorded)" in line for line in again) == 19
