"""The deployment's queue dead letters (control/0004): every message the Functions host gave up on and moved
to a poison queue, kept byte-exact once taken off it, with what it could be attributed to and why it failed;
and the deployment's own alert outbox, which tells Slack about them. A dead letter and its notice are written
in one transaction, so a message is never taken off its poison queue without both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.errors import EventStoreError
from eventstore.store.alert_outbox import AlertOutbox, Notice
from eventstore.store.connection import StorePool, run
from eventstore.store.schema import QUEUE_DEAD_LETTERS, table


class UnknownDeadLetter(EventStoreError, LookupError):
    """No queue dead letter has this id."""

    def __init__(self, letter_id: int) -> None:
        super().__init__(f"no queue dead letter has id {letter_id}")
        self.letter_id = letter_id


class DeadLetterMismatch(EventStoreError):
    """A poison message arrived under the id of a stored dead letter with other bytes: never overwritten."""


@dataclass(frozen=True)
class NewQueueDeadLetter:
    queue: str
    """The poison queue it was taken from (`workflow-messages-poison`)."""
    message_id: str
    body: bytes
    """The message as the queue held it: base64-decoded when `base64`, else its text as UTF-8."""
    base64: bool
    tenant_id: str | None
    message_type: str | None
    workflow_id: str | None
    reason: str
    dequeue_count: int | None
    """How often it was taken off the poison queue (more than 1: a run died before deleting it)."""
    queued_at: datetime | None


class QueueDeadLetterRow(NamedTuple):
    id: int
    queue: str
    message_id: str
    body: bytes
    body_sha256: bytes
    base64: bool
    tenant_id: str | None
    message_type: str | None
    workflow_id: str | None
    reason: str
    dequeue_count: int | None
    queued_at: datetime | None
    dead_at: datetime
    redriven_at: datetime | None
    redriven_by: str | None
    redrive_reason: str | None
    redrives: int
    erasure_id: UUID | None
    """The erasure that removed its body (which held an erased subject's data), if one did."""


_COLUMNS = (
    "id, queue, message_id, body, body_sha256, base64, tenant_id, message_type, workflow_id, reason,"
    " dequeue_count, queued_at, dead_at, redriven_at, redriven_by, redrive_reason, redrives, erasure_id"
)


class QueueDeadLetters(AlertOutbox):
    """Obtain with `EventStore.queue_dead_letters()`; its outbox is the deployment's (`tenant_id` None)."""

    def __init__(
        self, pool: StorePool, control_schema: str, maintenance: Callable[[], StorePool] | None = None
    ) -> None:
        super().__init__(control_schema, pool, None)
        self._letters = table(control_schema, QUEUE_DEAD_LETTERS)
        self._maintenance = maintenance

    def record(self, letter: NewQueueDeadLetter, notices: Sequence[Notice]) -> bool:
        """Keep `letter` and queue `notices` about it, in one transaction; False when it was kept before (the
        same message taken again after a run died before deleting it). The same id with other bytes raises
        `DeadLetterMismatch` and stores nothing."""
        digest = hashlib.sha256(letter.body).digest()
        insert = sql.SQL(
            "INSERT INTO {letters} (queue, message_id, body, body_sha256, base64, tenant_id, message_type,"
            " workflow_id, reason, dequeue_count, queued_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            # Taken before: the row is the answer (compared below), never a second copy nor an overwrite.
            " ON CONFLICT (queue, message_id) DO UPDATE SET redrives = {letters}.redrives"
            " RETURNING body_sha256, xmax = 0"
        ).format(letters=self._letters)
        params = (
            letter.queue, letter.message_id, letter.body, digest, letter.base64, letter.tenant_id,
            letter.message_type, letter.workflow_id, letter.reason, letter.dequeue_count, letter.queued_at,
        )  # fmt: skip

        def record(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                row = conn.execute(insert, params).fetchone()
                assert row is not None  # an upsert with RETURNING always answers
                stored, inserted = bytes(row[0]), bool(row[1])
                if stored != digest:
                    raise DeadLetterMismatch(
                        f"poison message {letter.message_id} of {letter.queue} was kept before with other bytes"
                    )
                self._enqueue(conn, notices)
                return inserted

        return run(self._pool, record, writes=True)

    def get(self, letter_id: int) -> QueueDeadLetterRow | None:
        statement = sql.SQL("SELECT " + _COLUMNS + " FROM {} WHERE id = %s").format(self._letters)
        row = run(self._pool, lambda conn: conn.execute(statement, (letter_id,)).fetchone())
        return _row(row) if row else None

    def list(
        self,
        *,
        tenant_id: str | None = None,
        queue: str | None = None,
        waiting: bool = False,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[QueueDeadLetterRow]:
        """Dead letters in the order they were kept, after `after_id`; `waiting`: only those never redriven."""
        conditions = [sql.SQL("id > %s")]
        params: list[Any] = [after_id]
        if tenant_id is not None:
            conditions.append(sql.SQL("tenant_id = %s"))
            params.append(tenant_id)
        if queue is not None:
            conditions.append(sql.SQL("queue = %s"))
            params.append(queue)
        if waiting:
            conditions.append(sql.SQL("redriven_at IS NULL"))
        statement = sql.SQL("SELECT " + _COLUMNS + " FROM {} WHERE {} ORDER BY id LIMIT %s").format(
            self._letters, sql.SQL(" AND ").join(conditions)
        )
        rows = run(self._pool, lambda conn: conn.execute(statement, (*params, limit)).fetchall())
        return [_row(r) for r in rows]

    def mark_redriven(self, letter_id: int, by: str, reason: str | None = None) -> QueueDeadLetterRow:
        """Stamp a dead letter sent back to its queue (the message itself stays as it was); the row now."""
        statement = sql.SQL(
            "UPDATE {} SET redriven_at = now(), redriven_by = %s, redrive_reason = %s, redrives = redrives + 1"
            " WHERE id = %s RETURNING " + _COLUMNS
        ).format(self._letters)
        row = run(self._pool, lambda conn: conn.execute(statement, (by, reason, letter_id)).fetchone(), writes=True)
        if row is None:
            raise UnknownDeadLetter(letter_id)
        return _row(row)

    def holding(self, tenant_id: str, needles: Sequence[bytes]) -> int:
        """How many of the tenant's dead letters not erased yet hold one of `needles` in their body."""
        if not needles:
            return 0
        statement = sql.SQL(
            "SELECT count(*) FROM {} WHERE tenant_id = %s AND erasure_id IS NULL"
            " AND EXISTS (SELECT 1 FROM unnest(%s::bytea[]) AS n(needle) WHERE position(n.needle in body) > 0)"
        ).format(self._letters)
        row = run(self._pool, lambda conn: conn.execute(statement, (tenant_id, list(needles))).fetchone())
        return int(row[0]) if row else 0

    def erase(self, tenant_id: str, needles: Sequence[bytes], erasure_id: UUID) -> int:
        """Remove the body of each of the tenant's dead letters that holds one of `needles` (an erased
        subject's value, as JSON writes it), as the maintenance role; how many. Asked again, it finds them
        erased already and looks at the others again."""
        if self._maintenance is None or not needles:
            return 0
        statement = sql.SQL(
            "UPDATE {} SET body = ''::bytea, erasure_id = %s WHERE tenant_id = %s AND erasure_id IS NULL"
            " AND EXISTS (SELECT 1 FROM unnest(%s::bytea[]) AS n(needle) WHERE position(n.needle in body) > 0)"
        ).format(self._letters)
        params = (erasure_id, tenant_id, list(needles))
        return run(self._maintenance(), lambda conn: conn.execute(statement, params).rowcount, writes=True)


def _row(row: tuple[Any, ...]) -> QueueDeadLetterRow:
    values = list(row)
    values[3], values[4] = bytes(values[3]), bytes(values[4])
    return QueueDeadLetterRow(*values)
