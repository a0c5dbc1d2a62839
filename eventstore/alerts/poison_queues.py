"""Takes what the Functions host moved to the ingest queues' poison queues and keeps it as queue dead letters
(`QueueDeadLetters`, control schema), each with a Slack notice queued in the same transaction; the message
leaves its poison queue only once both are stored. The alert timer does this on every run; `redrive` sends
a dead letter back to the queue it came from (ingest is idempotent: a message recorded meanwhile is not
recorded twice).

A poison queue is drained by a timer, not a queue trigger: a trigger on a poison queue that fails (the
database down) would move the message on to a `-poison-poison` queue nobody reads; here it only becomes
visible again.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage

from eventstore.alerts.categories import admin_url, deployment_url
from eventstore.errors import StoreUnavailable
from eventstore.ingest import MESSAGES_QUEUE, OUTCOMES_QUEUE, POISON_SUFFIX, diagnose
from eventstore.settings import Settings
from eventstore.storage_clients import StorageAccount
from eventstore.store import (
    DeadLetterMismatch,
    EventStore,
    NewQueueDeadLetter,
    Notice,
    QueueDeadLetterRow,
    QueueDeadLetters,
)

log = logging.getLogger(__name__)

POISON_QUEUES = {MESSAGES_QUEUE + POISON_SUFFIX: MESSAGES_QUEUE, OUTCOMES_QUEUE + POISON_SUFFIX: OUTCOMES_QUEUE}
"""Each poison queue drained, with the ingest queue its messages came from (and a redrive sends them to)."""
PAGE = 32
"""Messages per receive: the Storage service's maximum."""
HIDE_SECONDS = 60
"""How long a taken message stays invisible: a run that dies leaves it to the next one."""
MAX_PER_RUN = 5_000


@dataclass
class DrainResult:
    kept: int = 0
    """New dead letters stored."""
    again: int = 0
    """Messages stored before (a run that died before deleting them), deleted now."""
    errors: list[str] = field(default_factory=list)


NOT_CONFIGURED = (
    "no queue storage is configured (AzureWebJobsStorage__queueServiceUri or EVENTSTORE_QUEUE_ACCOUNT_URL with "
    "the app's identity, or AzureWebJobsStorage)"
)


class PoisonQueues:
    """The poison queues of the ingest queues, on the app's queue storage account: `account` (or a connection
    string of it), reached with the app's managed identity when it is an account URL (`storage_clients`)."""

    def __init__(
        self,
        account: StorageAccount | str,
        timeout: float,
        sources: Mapping[str, str] = POISON_QUEUES,
        *,
        hide_seconds: int = HIDE_SECONDS,
    ) -> None:
        self.account = account if isinstance(account, StorageAccount) else StorageAccount(connection_string=account)
        self._timeout = timeout
        self.sources = dict(sources)
        self.hide_seconds = hide_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> PoisonQueues | None:
        """The app's poison queues; None when no queue storage is configured (neither way)."""
        account = StorageAccount.queues(settings)
        return cls(account, settings.dependency_timeout_seconds) if account else None

    @classmethod
    def required(cls, settings: Settings) -> PoisonQueues:
        """`from_settings` for a redrive, which cannot do without: `StoreUnavailable` naming the settings."""
        queues = cls.from_settings(settings)
        if queues is None:
            raise StoreUnavailable(NOT_CONFIGURED)
        return queues

    @contextlib.contextmanager
    def client(self, name: str) -> Iterator[QueueClient]:
        client = self.account.queue(
            name, timeout=self._timeout, retry_total=1, connection_timeout=self._timeout, read_timeout=self._timeout
        )
        try:
            yield client
        finally:
            client.close()

    def send(self, name: str, content: str) -> None:
        with self.client(name) as client:
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            client.send_message(content)


def _decoded(content: str | bytes) -> tuple[bytes, bool]:
    """The message's bytes as its function received them (base64-decoded), or its text when it is not base64."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    try:
        return base64.b64decode(text, validate=True), True
    except (binascii.Error, ValueError):
        return text.encode("utf-8"), False


def dead_letter(store: EventStore, queue: str, source: str, message: QueueMessage) -> NewQueueDeadLetter:
    body, was_base64 = _decoded(message.content)
    diagnosis = diagnose(source, body, was_base64)
    reason = diagnosis.reason
    if diagnosis.readable and diagnosis.tenant_id is not None and store.registry.find(diagnosis.tenant_id) is None:
        reason = f"UnknownTenant: tenant {diagnosis.tenant_id} was never onboarded"
    return NewQueueDeadLetter(
        queue=queue,
        message_id=message.id,
        body=body,
        base64=was_base64,
        tenant_id=diagnosis.tenant_id,
        message_type=diagnosis.message_type,
        workflow_id=diagnosis.workflow_id,
        reason=reason,
        dequeue_count=message.dequeue_count,
        queued_at=message.inserted_on,
    )


def slack_notice(letter: NewQueueDeadLetter, settings: Settings) -> Notice:
    key = f"queue-dead-letter/{letter.queue}/{letter.message_id}"
    what = letter.message_type or "unreadable"
    tenant = letter.tenant_id or "no tenant"
    query: dict[str, str | None] = {"queue": letter.queue, "messageId": letter.message_id}
    page = (
        admin_url(settings.public_url, letter.tenant_id, "dead-letters", query)
        if letter.tenant_id
        else deployment_url(settings.public_url, "dead-letters", query)
    )
    return Notice(
        channel="slack",
        notice_key=key,
        ordering_key=key,
        kind="queue-dead-letter",
        body={
            "summary": f"Dead letter: a {what} message ({tenant}) landed in {letter.queue}",
            "group": " / ".join(p for p in ("queue dead letter", letter.queue, letter.message_type) if p),
            "fields": {
                "Tenant": letter.tenant_id,
                "Queue": letter.queue,
                "Message type": letter.message_type,
                "Workflow": letter.workflow_id,
                "Error": letter.reason[:300],
                "Message": letter.message_id,
            },
            "links": [{"href": page, "text": "The dead letter"}],
        },
    )


def drain(
    store: EventStore,
    settings: Settings,
    queues: PoisonQueues,
    *,
    notify: bool,
    limit: int = MAX_PER_RUN,
) -> DrainResult:
    """Keep every message of the poison queues as a dead letter (with a Slack notice when `notify`), then
    delete it from its queue. Stops a queue at the first message it cannot keep (said in `errors`); that
    message and those after it stay on the queue for the next run."""
    result = DrainResult()
    for name in queues.sources:
        try:
            _drain_queue(store, settings, queues, name, store.queue_dead_letters(), notify, limit, result)
        except (AzureError, StoreUnavailable) as exc:
            log.warning("dead letters: %s could not be drained now: %s", name, exc)
            result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
    return result


def _drain_queue(
    store: EventStore,
    settings: Settings,
    queues: PoisonQueues,
    name: str,
    letters: QueueDeadLetters,
    notify: bool,
    limit: int,
    result: DrainResult,
) -> None:
    taken = 0
    with queues.client(name) as client:
        while taken < limit:
            try:
                page = list(client.receive_messages(messages_per_page=PAGE, visibility_timeout=queues.hide_seconds,
                                                    max_messages=PAGE))  # fmt: skip
            except ResourceNotFoundError:  # no message was ever poisoned here
                return
            if not page:
                return
            for message in page:
                letter = dead_letter(store, name, queues.sources[name], message)
                try:
                    new = letters.record(letter, [slack_notice(letter, settings)] if notify else [])
                except DeadLetterMismatch as exc:
                    log.error("dead letters: %s", exc)
                    result.errors.append(f"{name}: {exc}")
                    return
                client.delete_message(message)
                taken += 1
                if new:
                    result.kept += 1
                    log.error(
                        "dead letters: message %s of %s (tenant %s) kept: %s",
                        message.id, name, letter.tenant_id, letter.reason,
                    )  # fmt: skip
                else:
                    result.again += 1


def redrive(
    store: EventStore, queues: PoisonQueues, letter: QueueDeadLetterRow, by: str, reason: str | None = None
) -> QueueDeadLetterRow:
    """Send a dead letter back to the queue it was poisoned from, encoded as it came, and stamp it (sent
    first: a stamp lost to a crash leaves a redrive that can be repeated, and ingest records a message once).
    Queue storage that cannot be reached is `StoreUnavailable`."""
    target = queues.sources.get(letter.queue, letter.queue.removesuffix(POISON_SUFFIX))
    content = base64.b64encode(letter.body).decode("ascii") if letter.base64 else letter.body.decode("utf-8")
    try:
        queues.send(target, content)
    except AzureError as exc:
        raise StoreUnavailable(f"queue {target} could not be reached: {type(exc).__name__}") from exc
    return store.queue_dead_letters().mark_redriven(letter.id, by, reason)
