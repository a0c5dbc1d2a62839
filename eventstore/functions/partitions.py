"""Partition upkeep: every night, each tenant gets this month's and the next months' partitions.

Appends create a missing month on demand, so this timer is what keeps that path cold: creating a
partition takes a lock on `events` that briefly queues writers.
"""

from __future__ import annotations

import logging

import azure.functions as func

from eventstore.services import services

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)

# NCRONTAB (6 fields, seconds first): 03:17:00 UTC daily; run at start-up too, so a new deployment
# never waits a day for its partitions.
SCHEDULE = "0 17 3 * * *"


@blueprint.function_name("ensure_partitions")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=True)
def ensure_partitions(timer: func.TimerRequest) -> None:
    created = services().store.ensure_partitions()
    count = sum(len(names) for names in created.values())
    log.info(
        "partitions: %d created for %d tenant(s)%s", count, len(created), " (past due)" if timer.past_due else ""
    )
