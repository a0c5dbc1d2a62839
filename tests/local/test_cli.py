from __future__ import annotations

import os
import subprocess
import sys

from eventstore import TenantEvents
from tests.helpers import random_tenant_id


def run(args: list[str], database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVENTSTORE_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "eventstore_local", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_records_the_walk_and_prints_history_and_state(database_url: str) -> None:
    first = run(["demo"], database_url)
    assert first.returncode == 0, first.stderr
    assert "InstanceCreationRequestReceived" in first.stdout
    assert "paid" in first.stdout and "complete" in first.stdout
    second = run(["demo"], database_url)
    assert second.returncode == 0, second.stderr
    assert "already recorded" in second.stdout


def test_tenant_commands(database_url: str) -> None:
    tenant_id = random_tenant_id()
    onboard = run(["tenant", "onboard", tenant_id], database_url)
    assert onboard.returncode == 0 and tenant_id in onboard.stdout
    shown = run(["tenant", "show", tenant_id], database_url)
    assert shown.returncode == 0 and "partitions: events_" in shown.stdout
    assert tenant_id in run(["tenant", "list"], database_url).stdout
    migrated = run(["migrate"], database_url)
    assert migrated.returncode == 0 and "migrated" in migrated.stdout
    assert run(["partitions", "--months-ahead", "1"], database_url).returncode == 0


def test_errors_are_one_clear_line_and_a_non_zero_exit(database_url: str) -> None:
    for args in (["tenant", "onboard", "NOT-A-TENANT"], ["tenant", "show", random_tenant_id()]):
        result = run(args, database_url)
        assert result.returncode == 1
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("eventstore: error: ")


def test_views_run_status_and_rebuild(database_url: str, walked: TenantEvents) -> None:
    tenant_id = walked.tenant_id
    applied = run(["views", "run", "--tenant", tenant_id], database_url)
    assert applied.returncode == 0, applied.stderr
    assert "1 tenant(s) brought up to date" in applied.stdout
    status = run(["views", "status", "--tenant", tenant_id], database_url)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert tenant_id in lines
    instances = next(line for line in lines if line.strip().startswith("instances"))
    assert "lag 0 event(s)" in instances and "stopped" not in instances
    assert "every" not in run(["views", "status"], database_url).stderr  # every tenant: no --tenant needed
    rebuilt = run(["views", "rebuild", "instances", "--tenant", tenant_id], database_url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"{tenant_id} instances: rebuilt from" in rebuilt.stdout
    unknown = run(["views", "rebuild", "no-such-view", "--tenant", tenant_id], database_url)
    assert unknown.returncode == 1 and "no-such-view" in unknown.stderr
