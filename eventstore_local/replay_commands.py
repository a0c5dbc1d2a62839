"""`eventstore replay ...`: replay one stored message or every message a filter selects, through a running
app's API (the admin routes of docs/replay.md), and follow the job it creates; list, show, pause, resume and
cancel jobs.

The command is an HTTP client like `walk` and `feed watch`, never a second writer: the app records who asked
and why, and its driver and forwarder do the sending, so following a job (or stopping following it) changes
nothing about it.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from eventstore.errors import EventStoreError
from eventstore_local.app_client import AppClient

if TYPE_CHECKING:  # imported where used: building the `eventstore` parser must stay cheap for every command
    from eventstore.http.replay_models import DryRunAnswer, MessagePlanItem, ReplayAccepted, ReplayJob, ReplayJobsPage

DEFAULT_URL = "http://127.0.0.1:7071/api"
POLL_SECONDS = 0.5
"""How often a followed job is read: often enough for a live bar, rare enough to cost the app nothing."""
REQUEST_TIMEOUT = 30.0
ENDED = ("finished", "cancelled", "paused")
"""Following stops at these: nothing more is sent until someone acts (a paused job waits for resume)."""
EXIT_NOT_FINISHED = 3
"""The exit code when the followed job paused or was cancelled instead of finishing (errors are 1)."""
EXIT_INTERRUPTED = 130
FOLLOW_ATTEMPTS = 5
EVENT_TYPES = ("TriggerReceived", "InstanceCreationRequestReceived")
"""The kinds of received message (the wire's MessageEventType; a test keeps the two equal)."""
STATUSES = ("received", "processing", "succeeded", "failed", "dead-lettered")
"""Processing statuses of a message (the wire's MessageStatus; a test keeps the two equal)."""


def _hint(slug: str, problem: Mapping[str, Any], tenant_id: str) -> str | None:
    """What to do next, by problem type: the API's detail speaks of request members, this names the option or
    the command."""
    if slug == "confirmation-required":
        return "add --confirm to replay them all; --dry-run shows what matches"
    if slug == "replay-overlap":
        jobs = problem.get("jobs")
        held = str(jobs[0]) if isinstance(jobs, list) and jobs else "<jobId>"
        return f"`eventstore replay status {tenant_id} {held}` shows it, `eventstore replay cancel ...` cancels it"
    if slug == "router-not-configured":
        return (
            "the app needs EVENTSTORE_REPLAY_ROUTER__QUEUE or __URL, or EVENTSTORE_REPLAY_ROUTERS__<tenant>__...; "
            "`eventstore host` sends replays to its sample engine's queue"
        )
    if slug == "nothing-to-replay":
        return "--dry-run shows what a filter matches"
    return None


class ReplayCommandFailed(EventStoreError):
    """The app refused a request of the command (its problem's detail), or could not be reached."""


def default_requester() -> str:
    """Who asks when --requested-by is not given: `user@host`, as a shell prompt shows it."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (a bare container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:256]


def _instant(text: str) -> str:
    """An argparse type: an ISO 8601 date or date-time, sent as RFC 3339 (UTC when no offset is given)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or date-time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", metavar="URL", default=DEFAULT_URL, help="the app's API (default %(default)s)")
    parser.add_argument(
        "--key",
        metavar="KEY",
        default=None,
        help="a key of the app, sent as x-functions-key (the replay routes are admin level)",
    )


def _who_arguments(parser: argparse.ArgumentParser, reason_required: bool) -> None:
    parser.add_argument(
        "--reason", metavar="R", required=reason_required, help="why: recorded in the tenant's audit stream"
    )
    parser.add_argument(
        "--requested-by", metavar="WHO", default=None, help="who asks, recorded with the reason (default: user@host)"
    )


def _follow_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-follow", dest="follow", action="store_false", help="print the job's id and return at once"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`eventstore replay`'s actions, on the parser `cli.py` made for it."""
    parser.epilog = (
        "Following a job ends when it finishes (exit 0), or pauses or is cancelled (exit 3); Ctrl-C stops "
        "following without cancelling the job. The app's refusals are one line on stderr and exit 1."
    )
    actions = parser.add_subparsers(dest="action", required=True)
    message = actions.add_parser(
        "message", help="send one stored message to the tenant's router again and follow its job"
    )
    message.add_argument("tenant_id")
    message.add_argument("event_id", help="the received message's event id")
    _who_arguments(message, reason_required=True)
    message.add_argument(
        "--dry-run", action="store_true", help="only show the plan: which known steps would be skipped or run"
    )
    _follow_arguments(message)
    _connection_arguments(message)

    bulk = actions.add_parser("bulk", help="replay every received message a filter selects, with a live progress bar")
    bulk.add_argument("tenant_id")
    _who_arguments(bulk, reason_required=True)
    bulk.add_argument(
        "--from", dest="received_from", metavar="ISO", type=_instant, help="received at or after (ISO 8601; UTC)"
    )
    bulk.add_argument("--to", dest="received_to", metavar="ISO", type=_instant, help="received before (ISO 8601; UTC)")
    bulk.add_argument("--type", dest="event_type", choices=EVENT_TYPES, help="the message's kind")
    bulk.add_argument(
        "--message-type", metavar="TYPE", help="the trigger's name or the workflow started (e.g. deal.won)"
    )
    bulk.add_argument("--workflow", dest="workflow_id", metavar="W", help="the workflow id")
    bulk.add_argument("--status", choices=STATUSES, help="the message's processing status")
    bulk.add_argument("--dry-run", action="store_true", help="only count the matches and plan the first ones")
    bulk.add_argument(
        "--confirm", action="store_true", help="needed when more match than the app's EVENTSTORE_REPLAY_CONFIRM_OVER"
    )
    bulk.add_argument(
        "--rate", metavar="N", type=float, default=None, help="messages per second (default: the app's setting)"
    )
    bulk.add_argument(
        "--canary",
        metavar="N",
        type=int,
        default=None,
        help="send the first N, and go on only if their runs fail little enough",
    )
    bulk.add_argument(
        "--max-failure-rate",
        metavar="F",
        type=float,
        default=None,
        help="with --canary: the share of failed runs (0 to 1) above which the job pauses itself",
    )
    _follow_arguments(bulk)
    _connection_arguments(bulk)

    status = actions.add_parser("status", help="the tenant's recent jobs, or one job in full")
    status.add_argument("tenant_id")
    status.add_argument("job_id", nargs="?", default=None)
    status.add_argument(
        "--limit", metavar="N", type=int, default=20, help="how many jobs to list (default %(default)s)"
    )
    _connection_arguments(status)

    for name, what in (
        ("cancel", "cancel a job: its unsent messages are not sent"),
        ("pause", "pause a running job: nothing more is sent until it is resumed"),
        ("resume", "resume a paused job (also after its canary paused it)"),
    ):
        change = actions.add_parser(name, help=what)
        change.add_argument("tenant_id")
        change.add_argument("job_id")
        _who_arguments(change, reason_required=False)
        _connection_arguments(change)


class ReplayApi:
    """The replay routes of a running app, answers parsed into the API's own wire models."""

    def __init__(self, url: str, key: str | None = None, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self._app = AppClient(
            url, key, timeout=timeout, admin_note="the replay routes are admin level", failure=ReplayCommandFailed
        )
        self.url = self._app.url

    def close(self) -> None:
        self._app.close()

    def _path(self, *segments: str) -> str:
        return self._app.path(*segments)

    def _call(self, method: str, url: str, body: Mapping[str, Any] | None = None, tenant_id: str = "") -> Any:
        return self._app.call(method, url, body, hint=lambda slug, problem: _hint(slug, problem, tenant_id))

    def replay_message(
        self, tenant_id: str, event_id: str, *, reason: str, requested_by: str, dry_run: bool
    ) -> ReplayAccepted | DryRunAnswer:
        from eventstore.http.replay_models import DryRunAnswer, ReplayAccepted

        body = {"reason": reason, "requestedBy": requested_by, "dryRun": dry_run}
        url = self._path("tenants", tenant_id, "messages", event_id, "replay")
        document = self._call("POST", url, body, tenant_id)
        return _parse(DryRunAnswer, document) if dry_run else _parse(ReplayAccepted, document)

    def start_job(self, tenant_id: str, body: Mapping[str, Any]) -> ReplayAccepted | DryRunAnswer:
        from eventstore.http.replay_models import DryRunAnswer, ReplayAccepted

        document = self._call("POST", self._path("tenants", tenant_id, "replays"), body, tenant_id)
        return _parse(DryRunAnswer, document) if body.get("dryRun") else _parse(ReplayAccepted, document)

    def job(self, tenant_id: str, job_id: str) -> ReplayJob:
        from eventstore.http.replay_models import ReplayJob

        document = self._call("GET", self._path("tenants", tenant_id, "replays", job_id), tenant_id=tenant_id)
        return _parse(ReplayJob, document)

    def jobs(self, tenant_id: str, limit: int) -> ReplayJobsPage:
        from eventstore.http.replay_models import ReplayJobsPage

        url = self._path("tenants", tenant_id, "replays") + f"?limit={limit}"
        return _parse(ReplayJobsPage, self._call("GET", url, tenant_id=tenant_id))

    def change(self, tenant_id: str, job_id: str, action: str, *, reason: str | None, requested_by: str) -> ReplayJob:
        """`action`: cancel, pause or resume."""
        from eventstore.http.replay_models import ReplayJob

        body: dict[str, Any] = {"requestedBy": requested_by}
        if reason:
            body["reason"] = reason
        if action == "cancel":
            document = self._call("DELETE", self._path("tenants", tenant_id, "replays", job_id), body, tenant_id)
        else:
            url = self._path("tenants", tenant_id, "replays", job_id, action)
            document = self._call("POST", url, body, tenant_id)
        return _parse(ReplayJob, document)


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(model: type[_Model], document: Any) -> _Model:
    try:
        return model.model_validate(document)
    except ValidationError as exc:  # another version of the app: say so rather than print a traceback
        raise ReplayCommandFailed(f"the app answered a {model.__name__} this command does not know: {exc}") from exc


# --- output ------------------------------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if value else "-"


def _plan_lines(plan: MessagePlanItem) -> list[str]:
    lines = [f"  {plan.event_id}  {plan.message_type}, {plan.status}, received {_when(plan.received_at)}"]
    if not plan.steps:
        lines.append("    no steps known for it: the whole workflow runs")
    for step in plan.steps:
        where = f"  (succeeded in execution {step.execution_id}, step {step.step_id})" if step.action == "skip" else ""
        lines.append(f"    {step.action:<4}  {step.name or '(unnamed step)'}{where}")
    return lines


def _print_dry_run(answer: DryRunAnswer, say: Callable[[str], None]) -> None:
    say(f"dry run: {answer.matched} message(s) match; replays would go to {answer.target}")
    if answer.sample:
        shown = "the plan" if answer.matched == 1 else f"the first {len(answer.sample)}, with their plans"
        say(f"{shown} (skip: succeeded before for its idempotency key; run: runs again):")
        for plan in answer.sample:
            for line in _plan_lines(plan):
                say(line)
    say("nothing was sent (--dry-run)")


def _counts(job: ReplayJob) -> str:
    c = job.counts
    waiting = c.pending + c.queued + c.sending
    parts = [f"{job.sent} of {job.matched} sent"]
    failing = f" ({c.failing} of them failing, retried)" if c.failing else ""  # failing items are pending too
    parts += [f"{waiting} waiting{failing}"] if waiting else []
    parts += [f"{c.cancelled} not sent (cancelled)"] if c.cancelled else []
    return ", ".join(parts)


def _outcomes(job: ReplayJob) -> str:
    if not job.outcomes:
        return "no executions reported yet"
    return "executions: " + ", ".join(f"{n} {status}" for status, n in sorted(job.outcomes.items()))


def _print_end(tenant_id: str, job: ReplayJob, say: Callable[[str], None]) -> int:
    say(f"job {job.job_id} {job.state}: {_counts(job)}; {_outcomes(job)}")
    if job.state == "paused":
        say(f"  paused: {job.paused_reason or 'by request'}")
        say(f"  resume: eventstore replay resume {tenant_id} {job.job_id}")
        say(f"  cancel: eventstore replay cancel {tenant_id} {job.job_id}")
    if job.last_error and job.state != "finished":
        say(f"  last error ({_when(job.last_error_at)}): {job.last_error}")
    return 0 if job.state == "finished" else EXIT_NOT_FINISHED


def _print_job(job: ReplayJob, say: Callable[[str], None]) -> None:
    say(f"job {job.job_id} ({job.kind}): {job.state}")
    say(f"  reason: {job.reason}  (requested by {job.requested_by})")
    if job.filter:
        say("  filter: " + ", ".join(f"{k}={v}" for k, v in job.filter.items()))
    say(f"  target: {job.target}, rate {job.rate:g}/s")
    if job.canary:
        checked = "passed" if job.canary_checked else "not checked yet"
        say(f"  canary: first {job.canary}, max failure rate {job.max_failure_rate or 0:.0%} ({checked})")
    c = job.counts
    say(f"  {job.sent} of {job.matched} sent")
    say(
        f"  items: {c.pending} pending, {c.queued} queued, {c.sending} sending, {c.sent} sent, "
        f"{c.failing} failing, {c.cancelled} cancelled"
    )
    say(f"  {_outcomes(job)}")
    if job.paused_reason:
        say(f"  paused: {job.paused_reason}")
    if job.last_error:
        say(f"  last error ({_when(job.last_error_at)}): {job.last_error}")
    say(f"  created {_when(job.created_at)}, finished {_when(job.finished_at)}")


# --- following a job ---------------------------------------------------------------------------------------


def _stopped_following(tenant_id: str, job_id: str, say: Callable[[str], None]) -> int:
    say(
        f"stopped following; job {job_id} goes on in the app (it was not cancelled): "
        f"`eventstore replay status {tenant_id} {job_id}`, `eventstore replay cancel {tenant_id} {job_id}`"
    )
    return EXIT_INTERRUPTED


def _read_job(api: ReplayApi, tenant_id: str, job_id: str) -> ReplayJob:
    """The job, read again while following: an app that does not answer for a moment (a 503 while its
    database fails over, a restart) is asked again, a few times, before following gives up."""
    attempt = 1
    while True:
        try:
            return api.job(tenant_id, job_id)
        except ReplayCommandFailed as exc:
            if attempt >= FOLLOW_ATTEMPTS:
                raise ReplayCommandFailed(
                    f"{exc} (stopped following; the job goes on in the app: `eventstore replay status {tenant_id} "
                    f"{job_id}`)"
                ) from exc
            attempt += 1
            time.sleep(1.0)


def _follow_quietly(api: ReplayApi, tenant_id: str, job_id: str, say: Callable[[str], None]) -> ReplayJob:
    """A single replay's job: a line when its error changes (the router down or refusing: retried)."""
    error: str | None = None
    while True:
        job = _read_job(api, tenant_id, job_id)
        if job.last_error and job.last_error != error and job.state not in ENDED:
            say(f"  not sent yet: {job.last_error} (retried with backoff; the job holds the message)")
        error = job.last_error
        if job.state in ENDED:
            return job
        time.sleep(POLL_SECONDS)


def _average(job: ReplayJob) -> float | None:
    created, ended = job.created_at, job.finished_at or datetime.now(UTC)
    if created.tzinfo is None or ended.tzinfo is None:  # the API sends offsets; a naive time would not compare
        return None
    seconds = (ended - created).total_seconds()
    return job.sent / seconds if job.sent and seconds > 0 else None


def _follow_with_bar(api: ReplayApi, tenant_id: str, job: ReplayJob) -> ReplayJob:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Messages per second over rich's sliding window (its speed column counts bytes); until the window
        holds two readings (or for a job done in one), the job's average since it was created."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed or task.fields["average"]
            return Text(f"{speed:.1f} msg/s" if speed else "- msg/s", style="progress.data.speed")

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
    )
    error: str | None = None
    with Progress(*columns, console=Console(highlight=False, soft_wrap=True)) as progress:
        task = progress.add_task("sent", total=job.matched, completed=job.sent, note="", average=None)
        while True:
            if job.last_error and job.last_error != error and job.state not in ENDED:
                progress.console.print(f"not sent yet: {job.last_error} (retried with backoff)", markup=False)
            error = job.last_error
            failing = f"{job.counts.failing} failing" if job.counts.failing else ""
            progress.update(task, total=job.matched, completed=job.sent, note=failing, average=_average(job))
            if job.state in ENDED:
                return job
            time.sleep(POLL_SECONDS)
            job = _read_job(api, tenant_id, job.job_id)


# --- the actions -------------------------------------------------------------------------------------------


def _message(api: ReplayApi, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from eventstore.http.replay_models import ReplayAccepted

    who = args.requested_by or default_requester()
    answer = api.replay_message(
        args.tenant_id, args.event_id, reason=args.reason, requested_by=who, dry_run=args.dry_run
    )
    if not isinstance(answer, ReplayAccepted):
        _print_dry_run(answer, say)
        return 0
    say(f"replay {answer.replay_id} of message {args.event_id}: job {answer.job_id}, to {answer.target}")
    if not args.follow:
        return 0
    try:
        job = _follow_quietly(api, args.tenant_id, answer.job_id, say)
    except KeyboardInterrupt:
        return _stopped_following(args.tenant_id, answer.job_id, say)
    code = _print_end(args.tenant_id, job, say)
    if job.state == "finished":
        # Finished means the router took it; the engine's run comes after, and shows with the message.
        say(f"  the engine's run: GET {api.url}/tenants/{args.tenant_id}/messages/{args.event_id}/executions")
    return code


def bulk_request(args: argparse.Namespace, requested_by: str) -> dict[str, Any]:
    """The body of `POST /replays` the options ask for (members not given are left out: the app's defaults)."""
    given = {
        "status": args.status,
        "eventType": args.event_type,
        "messageType": args.message_type,
        "workflowId": args.workflow_id,
        "from": args.received_from,
        "to": args.received_to,
    }
    body: dict[str, Any] = {
        "filter": {k: v for k, v in given.items() if v is not None},
        "reason": args.reason,
        "requestedBy": requested_by,
        "dryRun": args.dry_run,
        "confirm": args.confirm,
    }
    options = {"rate": args.rate, "canary": args.canary, "maxFailureRate": args.max_failure_rate}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def _bulk(api: ReplayApi, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from eventstore.http.replay_models import ReplayAccepted

    answer = api.start_job(args.tenant_id, bulk_request(args, args.requested_by or default_requester()))
    if not isinstance(answer, ReplayAccepted):
        _print_dry_run(answer, say)
        return 0
    say(f"job {answer.job_id}: {answer.matched} message(s) to {answer.target}")
    if not args.follow:
        return 0
    try:
        job = api.job(args.tenant_id, answer.job_id)
        limit = f"{job.max_failure_rate or 0:.0%}"
        canary = f"; canary: the first {job.canary}, then on only within {limit} failed" if job.canary else ""
        say(f"sending at {job.rate:g}/s{canary} (Ctrl-C stops following; the job goes on)")
        job = _follow_with_bar(api, args.tenant_id, job)
    except KeyboardInterrupt:
        return _stopped_following(args.tenant_id, answer.job_id, say)
    return _print_end(args.tenant_id, job, say)


def _status(api: ReplayApi, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    if args.job_id:
        _print_job(api.job(args.tenant_id, args.job_id), say)
        return 0
    page = api.jobs(args.tenant_id, args.limit)
    if not page.jobs:
        say(f"tenant {args.tenant_id} has no replay jobs")
        return 0
    say(f"{'job':<36}  {'kind':<6}  {'state':<9}  {'sent/matched':>12}  {'created':<20}  reason")
    for job in page.jobs:
        say(
            f"{job.job_id:<36}  {job.kind:<6}  {job.state:<9}  {f'{job.sent}/{job.matched}':>12}  "
            f"{_when(job.created_at):<20}  {job.reason}  ({job.requested_by})"
        )
    if page.continuation:
        say(f"(older jobs too: --limit {args.limit * 2})")
    return 0


def _change(api: ReplayApi, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    who = args.requested_by or default_requester()
    job = api.change(args.tenant_id, args.job_id, args.action, reason=args.reason, requested_by=who)
    say(f"job {job.job_id} {job.state}: {_counts(job)}")
    if job.state == "paused":
        say(f"  resume: eventstore replay resume {args.tenant_id} {job.job_id}")
    return 0


def run(args: argparse.Namespace, say: Callable[[str], None] | None = None) -> int:
    """`eventstore replay <action>`: the exit code (a refusal raises `ReplayCommandFailed`)."""
    out = say or (lambda line: print(line, flush=True))
    api = ReplayApi(args.url, args.key)
    try:
        if args.action == "message":
            return _message(api, args, out)
        if args.action == "bulk":
            return _bulk(api, args, out)
        if args.action == "status":
            return _status(api, args, out)
        return _change(api, args, out)
    finally:
        api.close()
