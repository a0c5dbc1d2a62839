"""Retention's timer: every night (EVENTSTORE_RETENTION_SCHEDULE) the payloads older than
EVENTSTORE_RETENTION_DAYS move to each tenant's cold segments through the maintenance path
(docs/retention.md). A run stops starting batches after four minutes (the host's function timeout is five);
what is left goes in the next run."""

from __future__ import annotations

import logging

import azure.functions as func

from eventstore.retention.archiver import Archiver
from eventstore.services import services
from eventstore.settings import RetentionSchedule

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)

RUN_SECONDS = 240.0


@blueprint.function_name("archive_old_payloads")
@blueprint.timer_trigger(arg_name="timer", schedule=RetentionSchedule().retention_schedule, run_on_startup=False)
def archive_old_payloads(timer: func.TimerRequest) -> None:
    settings = services().settings
    if not settings.retention_enabled:
        return
    result = Archiver(services().store, settings).run(seconds=RUN_SECONDS)
    moved = [t for t in result.tenants if t.events]
    if moved or result.errors:
        log.info(
            "retention: %d payload(s) of %d tenant(s) moved to cold storage; errors %s",
            sum(t.events for t in moved), len(moved), result.errors,
        )  # fmt: skip
