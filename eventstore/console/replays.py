"""Replays: a bulk replay over the message search's filter (a dry run first: the count and the first matches
with each one's plan; then Start, confirmed past EVENTSTORE_REPLAY_CONFIRM_OVER), the job history, and one
job's live progress with pause, resume and cancel. The same operations as the JSON API (docs/replay.md),
recorded as asked by the signed-in operator."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from eventstore.console.messages import MessageSearch
from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute, Handler, Missing, Page, Redirect, parsed
from eventstore.console.render import path
from eventstore.errors import EventStoreError, InvalidInput
from eventstore.http.models import MessageEventType, MessageStatus
from eventstore.http.replay_models import ReplayFilter
from eventstore.replay import requests as replay
from eventstore.services import services
from eventstore.store import ConfirmationRequired, NothingToReplay, ReplayOverlap

log = logging.getLogger(__name__)

HISTORY_PAGE = 25
REFRESH_SECONDS = 2
ENDED = ("finished", "cancelled")
DRY_RUN_REASON = "(dry run)"
"""The API asks a dry run for a reason too; it records nothing, so the console does not make the operator
write one before they have seen what matches."""


class StartForm(BaseModel):
    """What the Start form adds to the filter."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    reason: str = Field(default="", max_length=2000)
    confirm: bool = False
    rate: float | None = Field(default=None, gt=0, le=1000)


def _read(values: Mapping[str, str]) -> tuple[MessageSearch, StartForm]:
    """The filter (the message search's fields and parsing) and the Start form's own fields."""
    return parsed(MessageSearch, values), parsed(StartForm, values)


def _described(search: MessageSearch) -> dict[str, Any]:
    """The filter as the job records it: the JSON API's names, so that every job reads alike."""
    wire = ReplayFilter(
        status=search.status, event_type=search.event_type, message_type=search.message_type,
        workflow_id=search.workflow_id, received_from=search.received_from, received_to=search.received_to,
    )  # fmt: skip
    return wire.model_dump(mode="json", by_alias=True, exclude_none=True)


def _history_cursor(asked: Asked) -> tuple[datetime, UUID] | None:
    text = asked.query("jobs_before")
    if text is None:
        return None
    moment, _, job_id = text.partition("|")
    try:
        return datetime.fromisoformat(moment), UUID(job_id)
    except ValueError:
        raise InvalidInput("not a page of this job history", field="jobs_before") from None


def _drive(tenant_id: str, job_id: UUID) -> None:
    # As the JSON API does: the first items go now rather than at the timer's next tick.
    try:
        services().replay_driver.drive_tenant(tenant_id)
    except Exception:  # the job is recorded; the timer drives it
        log.exception("console: replay job %s: first drive failed; the timer will drive it", job_id)


def _page(
    asked: Asked,
    tenant_id: str,
    values: Mapping[str, str],
    start: StartForm,
    dry: replay.DryRun | None,
    *,
    refusal: str | None = None,
    overlapping: list[UUID] | None = None,
) -> Page:
    jobs = replay.list_jobs(asked.store, tenant_id, before=_history_cursor(asked), limit=HISTORY_PAGE + 1)
    older = None
    if len(jobs) > HISTORY_PAGE:
        jobs = jobs[:HISTORY_PAGE]
        last = jobs[-1]
        older = path("tenants", tenant_id, "replays", jobs_before=f"{last.created_at.isoformat()}|{last.job_id}")
    filters = {
        name: values.get(name) or None for name in ("from", "to", "type", "messageType", "workflow", "status")
    }
    confirm_over = asked.settings.replay_confirm_over
    return asked.page(
        "replays.html", "Replays", tenant_id=tenant_id, section="replays", filters=filters, reason=start.reason,
        rate=values.get("rate") or "", default_rate=asked.settings.replay_rate, dry=dry,
        must_confirm=dry is not None and dry.matched > confirm_over, confirm_over=confirm_over,
        sample_size=replay.SAMPLE_SIZE, jobs=jobs, older=older, refusal=refusal, overlapping=overlapping or [],
        statuses=MessageStatus.__args__, types=MessageEventType.__args__,  # type: ignore[attr-defined]
    )  # fmt: skip


def _dry_run(asked: Asked, tenant_id: str, search: MessageSearch, reason: str) -> replay.DryRun:
    found = replay.replay_bulk(
        asked.store, asked.settings, tenant_id, search.filter(), _described(search),
        reason=reason or DRY_RUN_REASON, requested_by=asked.who, dry_run=True,
    )  # fmt: skip
    assert isinstance(found, replay.DryRun)
    return found


def replays(asked: Asked) -> Answer:
    """The filter form, its dry run (`dryrun=1`) with the Start form, and the job history."""
    tenant_id = asked.tenant_id()
    values = dict(asked.req.params)
    search, start = _read(values)
    dry = _dry_run(asked, tenant_id, search, start.reason) if asked.query("dryrun") else None
    return _page(asked, tenant_id, values, start, dry)


def start_replay(asked: Asked) -> Answer:
    """The Start button: `POST /tenants/{t}/replays` with the filter the dry run showed, as the operator."""
    tenant_id = asked.tenant_id()
    search, start = _read(asked.form)
    try:
        started = replay.replay_bulk(
            asked.store, asked.settings, tenant_id, search.filter(), _described(search),
            reason=start.reason, requested_by=asked.who, confirm=start.confirm, rate=start.rate,
        )  # fmt: skip
    except ConfirmationRequired as exc:
        refusal = (
            f"The filter matches {exc.matched} messages, more than {exc.limit} may be replayed without "
            "confirming. Check the count below, tick “I checked the count” and start again."
        )
        return _refused(asked, tenant_id, search, start, 409, refusal)
    except ReplayOverlap as exc:
        refusal = (
            "Some of these messages are already being replayed by the job(s) below: wait for them to finish, "
            "or cancel them, then start again. Nothing was started."
        )
        return _refused(asked, tenant_id, search, start, 409, refusal, exc.jobs)
    except NothingToReplay:
        return _refused(asked, tenant_id, search, start, 422, "No message matches the filter: nothing was started.")
    assert isinstance(started, replay.Started)
    _drive(tenant_id, started.job.job_id)
    return Redirect(path("tenants", tenant_id, "replays", started.job.job_id))


def _refused(
    asked: Asked,
    tenant_id: str,
    search: MessageSearch,
    start: StartForm,
    status: int,
    refusal: str,
    overlapping: list[UUID] | None = None,
) -> Page:
    """The replays page again with the refusal, the form as it was sent and the count as it is now."""
    dry = _dry_run(asked, tenant_id, search, start.reason)
    page = _page(asked, tenant_id, asked.form, start, dry, refusal=refusal, overlapping=overlapping)
    return replace(page, status=status)


def _job_id(asked: Asked) -> UUID:
    text = asked.route("replayId")
    try:
        return UUID(text)
    except ValueError:
        raise Missing(f"{text!r} is not a replay job id") from None


def job(asked: Asked) -> Answer:
    """One job: its filter and who asked, its progress (live while it runs) and its pause/resume/cancel."""
    tenant_id = asked.tenant_id()
    job_id = _job_id(asked)
    status = replay.job_status(asked.store, tenant_id, job_id)
    counts = status.counts
    ended = sum(status.outcomes.get(s, 0) for s in ("succeeded", "failed"))
    live = status.job.state not in ENDED and asked.query("live") != "0"
    return asked.page(
        "replay_job.html", f"Replay job {job_id}", tenant_id=tenant_id, section="replays", job=status.job,
        counts=counts, waiting=counts.pending + counts.queued, outcomes=status.outcomes, ended=ended,
        running=status.outcomes.get("started", 0), live=live, active=status.job.state not in ENDED,
        refresh=REFRESH_SECONDS if live else None, refresh_seconds=REFRESH_SECONDS,
    )  # fmt: skip


def _change(to: str) -> Handler:
    def change(asked: Asked) -> Answer:
        """Pause, resume or cancel, as `POST .../pause|resume` and `DELETE .../{jobId}` of the JSON API."""
        tenant_id = asked.tenant_id()
        job_id = _job_id(asked)
        reason = (asked.form.get("reason") or "").strip() or None
        if reason is not None and len(reason) > 2000:
            raise InvalidInput("at most 2000 characters", field="reason")
        try:
            replay.change_job(asked.store, tenant_id, job_id, to, by=asked.who, reason=reason)
        except InvalidInput as exc:
            if exc.field != "state":
                raise
            # The job moved on since the page was shown (it finished, or someone else acted): a conflict.
            raise EventStoreError(str(exc)) from None
        if to == "running":
            _drive(tenant_id, job_id)
        return Redirect(path("tenants", tenant_id, "replays", job_id))

    return change


ROUTES = (
    ConsoleRoute("console_replays", f"{TENANT}/replays", replays),
    ConsoleRoute("console_replays_start", f"{TENANT}/replays", start_replay, ("POST",)),
    ConsoleRoute("console_replay_job", f"{TENANT}/replays/{{replayId}}", job),
    ConsoleRoute("console_replay_pause", f"{TENANT}/replays/{{replayId}}/pause", _change("paused"), ("POST",)),
    ConsoleRoute("console_replay_resume", f"{TENANT}/replays/{{replayId}}/resume", _change("running"), ("POST",)),
    ConsoleRoute("console_replay_cancel", f"{TENANT}/replays/{{replayId}}/cancel", _change("cancelled"), ("POST",)),
)
