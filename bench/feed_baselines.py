"""The change feed's baselines: the same backlog published to the same Event Grid stand-in without the store.

- raw: plain psycopg reads the tenant's own `events` table in pages of 1,000 by (transaction_id,
  global_position) with the store's feed statement (same columns, same horizon), builds the slim
  CloudEvents with plain dict code (byte for byte the JSON of `eventstore.feed.cloudevents.to_cloudevent`,
  checked on the first page), and POSTs each page with `requests` straight to the topic endpoint.
- eventsourcing 9.5.6: a `PostgresApplicationRecorder` in a schema of its own holding the same number of
  events; its notification log read with `select_notifications` in pages of 1,000, each notification made
  into a CloudEvent of the same shape and posted the same way.

Neither keeps a checkpoint, a lock or a retry: this is the floor of "read, encode, POST".
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import psycopg
import requests
from psycopg import sql

from bench.baseline_eventsourcing import datastore_for
from eventstore.feed.cloudevents import DEFAULT_TYPE_PREFIX, cloudevent_type, to_cloudevent
from eventstore.models import Checkpoint
from eventstore.store import FeedEntry

PAGE = 1000
API_VERSION = "2018-01-01"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"
INSTANCE_PREFIX = "instance:"
_ES_TOPIC = "marain.workflows.events:StepCompleted"
_ES_EVENT_TYPE = "StepCompleted"


@dataclass(frozen=True)
class Drain:
    """One drain of a backlog into the stand-in."""

    events: int
    seconds: float
    cpu_seconds: float
    """CPU of this whole process (publisher or baseline, and the stand-in's threads)."""
    requests: int
    standin_cpu_seconds: float
    """CPU of the stand-in's handler threads (parsing, checking and recording what arrived)."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def slim_cloudevent(
    tenant_id: str,
    *,
    event_id: str,
    event_type: str,
    stream_id: str,
    sequence_number: int,
    global_position: int,
    workflow_id: str | None,
    workflow_instance_id: str | None,
    time_text: str,
) -> dict[str, Any]:
    """The slim CloudEvent of `to_cloudevent`, written on its own from the row's values (checked byte for byte)."""
    if stream_id.startswith(INSTANCE_PREFIX):
        subject = "workflowInstances/" + stream_id[len(INSTANCE_PREFIX) :]
        if workflow_instance_id is None:
            workflow_instance_id = stream_id[len(INSTANCE_PREFIX) :]
    else:
        subject = "audit" if stream_id == "audit" else "streams/" + stream_id
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/tenants/" + tenant_id,
        "subject": subject,
        "type": cloudevent_type(event_type, DEFAULT_TYPE_PREFIX),
        "time": time_text,
        "datacontenttype": "application/json",
        "data": {
            "tenantId": tenant_id,
            "workflowId": workflow_id,
            "workflowInstanceId": workflow_instance_id,
            "eventId": event_id,
            "eventType": event_type,
            "streamId": stream_id,
            "sequenceNumber": sequence_number,
            "globalPosition": global_position,
        },
    }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Poster:
    """POSTs CloudEvents batches to the stand-in with `requests` (one keep-alive session)."""

    def __init__(self, endpoint: str, key: str) -> None:
        self.url = f"{endpoint}?api-version={API_VERSION}"
        self.headers = {"aeg-sas-key": key, "Content-Type": BATCH_CONTENT_TYPE}
        self.session = requests.Session()
        self.requests = 0

    def post(self, events: list[dict[str, Any]]) -> None:
        answer = self.session.post(self.url, data=json.dumps(events).encode(), headers=self.headers, timeout=10)
        self.requests += 1
        if answer.status_code != 200:
            raise RuntimeError(f"stand-in answered {answer.status_code}: {answer.text[:300]}")

    def close(self) -> None:
        self.session.close()


class RawFeed:
    """The tenant's events table read with plain psycopg (text protocol, tuples), posted with `requests`."""

    def __init__(self, dsn: str, tenant_id: str, schema: str) -> None:
        self.tenant_id = tenant_id
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.statement = sql.SQL(
            "SELECT e.global_position, e.transaction_id::text::bigint, e.stream_id, e.sequence_number, e.event_id,"
            " e.event_type, e.workflow_id, e.workflow_instance_id, e.recorded_at FROM {} AS e"
            " WHERE (e.transaction_id, e.global_position) > (%s::text::xid8, %s)"
            " AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
            " ORDER BY e.transaction_id, e.global_position LIMIT %s"
        ).format(sql.Identifier(schema, "events"))

    def close(self) -> None:
        self.conn.close()

    def page(self, after: Checkpoint) -> list[tuple[Any, ...]]:
        return self.conn.execute(self.statement, (str(after.transaction_id), after.global_position, PAGE)).fetchall()

    def events_of(self, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        tenant_id = self.tenant_id
        return [
            slim_cloudevent(
                tenant_id,
                event_id=str(event_id),
                event_type=event_type,
                stream_id=stream_id,
                sequence_number=sequence_number,
                global_position=position,
                workflow_id=workflow_id,
                workflow_instance_id=instance_id,
                time_text=rfc3339(recorded_at),
            )
            for position, _, stream_id, sequence_number, event_id, event_type, workflow_id, instance_id, recorded_at
            in rows
        ]  # fmt: skip

    def check_equivalent(self) -> None:
        """The raw baseline's JSON is byte for byte the store's (`to_cloudevent`) for the first page."""
        rows = self.page(Checkpoint(0, 0))
        ours = json.dumps(self.events_of(rows))
        store = json.dumps([to_cloudevent(self.tenant_id, FeedEntry._make(row)) for row in rows])
        if ours != store:
            raise AssertionError(f"raw CloudEvents differ from to_cloudevent's:\n{ours[:600]}\n{store[:600]}")

    def drain(self, poster: Poster, after: Checkpoint) -> int:
        """Read, encode and post everything after `after`; returns the number of events posted."""
        count = 0
        while rows := self.page(after):
            poster.post(self.events_of(rows))
            count += len(rows)
            after = Checkpoint(rows[-1][1], rows[-1][0])
        return count


class EventSourcingFeed:
    """eventsourcing 9.5.6's notification log (PostgresApplicationRecorder) as the source of the feed."""

    def __init__(self, dsn: str, tenant_id: str) -> None:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder

        self._stored_event: Any = StoredEvent
        self.dsn = dsn
        self.tenant_id = tenant_id
        self.schema = "bench_esfeed_" + secrets.token_hex(4)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
        self.datastore: Any = datastore_for(dsn, self.schema, pool_size=2)
        self.recorder: Any = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()
        self.events = 0

    def close(self, *, drop: bool = True) -> None:
        self.datastore.close()
        if drop:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    def populate(self, events: int, streams: int, payload: bytes) -> None:
        """`events` over `streams` originators (aggregates), `insert_events` of 1,000 at a time."""
        per_stream = max(1, events // streams)
        batch: list[Any] = []
        written = 0
        while written < events:
            originator = uuid4()
            for version in range(1, min(per_stream, events - written) + 1):
                batch.append(self._stored_event(originator, version, _ES_TOPIC, payload))
                written += 1
                if len(batch) == PAGE:
                    self.recorder.insert_events(batch)
                    batch = []
        if batch:
            self.recorder.insert_events(batch)
        self.events = written

    def events_of(self, notifications: list[Any]) -> list[dict[str, Any]]:
        # The recorder keeps no event id and no time: the id is derived from (originator, version), the
        # time is when the page was read. Otherwise the CloudEvent is the store's, field for field.
        tenant_id = self.tenant_id
        now = rfc3339(datetime.now(UTC))
        out = []
        for n in notifications:
            originator: UUID = n.originator_id
            instance = originator.hex
            out.append(
                slim_cloudevent(
                    tenant_id,
                    event_id=str(uuid5(NAMESPACE_URL, f"{instance}/{n.originator_version}")),
                    event_type=_ES_EVENT_TYPE,
                    stream_id=INSTANCE_PREFIX + instance,
                    sequence_number=n.originator_version,
                    global_position=n.id,
                    workflow_id="wf-bench",
                    workflow_instance_id=instance,
                    time_text=now,
                )
            )
        return out

    def position_of(self, index: int) -> int:
        """The notification id of the `index`-th event (0-based) of the log."""
        notifications = self.recorder.select_notifications(start=None, limit=1, stop=None)
        return int(notifications[0].id) + index if notifications else 1

    def drain(self, poster: Poster, start: int) -> int:
        """Notifications from `start` (inclusive), read, encoded and posted page by page."""
        count = 0
        while notifications := self.recorder.select_notifications(start=start, limit=PAGE):
            poster.post(self.events_of(list(notifications)))
            count += len(notifications)
            start = int(notifications[-1].id) + 1
        return count


def measure(drain: Callable[[], tuple[int, int]], standin_cpu: Callable[[], float]) -> Drain:
    """Time `drain()` (returns events, requests) with wall, process CPU and the stand-in's CPU."""
    cpu_before, standin_before = time.process_time(), standin_cpu()
    started = time.perf_counter()
    events, requests_made = drain()
    seconds = time.perf_counter() - started
    return Drain(events, seconds, time.process_time() - cpu_before, requests_made, standin_cpu() - standin_before)
