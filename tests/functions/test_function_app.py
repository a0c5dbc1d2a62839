from __future__ import annotations

import json
import os
import subprocess
import sys

from eventstore import EventStore
from tests.helpers import PROJECT_ROOT, random_tenant_id

ROOT = PROJECT_ROOT

# Runs in a fresh interpreter: the functions read their settings from the environment once per process.
PROBE = """
import json
from azure.functions.timer import TimerRequest
from function_app import app
functions = {f.get_function_name(): f for f in app.get_functions()}
timer = functions["ensure_partitions"]
timer.get_user_function()(TimerRequest(past_due=False))
print(json.dumps({name: f.get_bindings_dict()["bindings"][0]["type"] for name, f in functions.items()}))
"""


def test_the_app_registers_its_blueprints_and_the_partition_timer_works(store: EventStore, database_url: str) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    env = {**os.environ, "EVENTSTORE_DATABASE_URL": database_url, "EVENTSTORE_PARTITIONS_AHEAD": "7"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["ensure_partitions"] == "timerTrigger"
    assert len(store.partitions(tenant_id)) >= 8


FEED_PROBE = """
import json
from azure.functions.timer import TimerRequest
from function_app import app
functions = {f.get_function_name(): f for f in app.get_functions()}
timer = functions["publish_feed"]
timer.get_user_function()(TimerRequest(past_due=False))
print(json.dumps({"schedule": timer.get_bindings_dict()["bindings"][0]["schedule"]}))
"""


def test_the_feed_timer_publishes_on_its_configured_schedule(store: EventStore, database_url: str) -> None:
    from eventstore_local.standins.eventgrid import EventGridStandIn
    from tests.helpers import event

    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    new = event()
    store.tenant(tenant_id).append("instance:timer", [new])
    with EventGridStandIn(key="timer-key") as grid:
        env = {
            **os.environ,
            "EVENTSTORE_DATABASE_URL": database_url,
            "EVENTSTORE_EVENTGRID_ENDPOINT": grid.endpoint,
            "EVENTSTORE_EVENTGRID_KEY": "timer-key",
            "EVENTSTORE_FEED_SCHEDULE": "*/2 * * * * *",
        }

        def probe(**extra: str) -> dict[str, object]:
            result = subprocess.run(
                [sys.executable, "-c", FEED_PROBE], cwd=ROOT, env={**env, **extra}, capture_output=True, text=True,
                timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            binding: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
            return binding

        assert probe(EVENTSTORE_FEED_ENABLED="false")["schedule"] == "*/2 * * * * *"
        assert str(new.event_id) not in {e["id"] for e in grid.events}  # switched off: nothing sent
        probe()
        assert str(new.event_id) in {e["id"] for e in grid.events}


INDEX_PROBE = """
import json
from function_app import app
functions = {f.get_function_name(): f for f in app.get_functions()}
print(json.dumps({"schedule": functions["publish_feed"].get_bindings_dict()["bindings"][0]["schedule"]}))
"""


def test_the_functions_are_indexed_even_when_the_other_settings_do_not_load() -> None:
    # The host indexes the functions before any runs: only the timer's schedule is read then.
    env = {**os.environ, "EVENTSTORE_CONTINUATION_KEY": "too short", "EVENTSTORE_POOL_MAX_SIZE": "many"}

    def schedule(value: str) -> object:
        result = subprocess.run(
            [sys.executable, "-c", INDEX_PROBE], cwd=ROOT, env={**env, "EVENTSTORE_FEED_SCHEDULE": value},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.splitlines()[-1])["schedule"]

    assert schedule("*/7 * * * * *") == "*/7 * * * * *"
    assert schedule("") == "*/5 * * * * *"  # empty: the default, as an unset setting
