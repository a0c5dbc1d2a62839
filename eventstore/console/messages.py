"""Messages: the search (time range, type, workflow, processing status; newest first, keyset pages) and one
message's page (its exact payload, pretty and raw, with its hash; its processing status; every execution of
it, original and replays; the replay button with a reason)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute, Download, Missing, Redirect, parsed
from eventstore.console.render import MAX_SHOWN_PAYLOAD, path
from eventstore.errors import EventStoreError, InvalidInput
from eventstore.http.models import MessageEventType, MessageStatus
from eventstore.models import is_json_content_type
from eventstore.query.instances import up_to_date
from eventstore.query.traces import executions_of_message, read_message
from eventstore.replay import requests as replay
from eventstore.store import NO_CONTROL_CHARACTERS
from eventstore.views.messages import MESSAGES, MessageFilter, count_messages, list_messages

PAGE_SIZE = 50
COUNT_CAP = 10_000


def _moment(value: str | None) -> datetime | None:
    """A time from a form: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (UTC, as the page says) or with an offset."""
    if value is None or value == "":
        return None
    moment = datetime.fromisoformat(value)  # ValueError names what is wrong
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class MessageSearch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    received_from: datetime | None = Field(default=None, alias="from")
    received_to: datetime | None = Field(default=None, alias="to")
    event_type: MessageEventType | None = Field(default=None, alias="type")
    message_type: str | None = Field(
        default=None, alias="messageType", max_length=256, pattern=NO_CONTROL_CHARACTERS
    )  # the envelope's own type (deal.won), as an alert's link names it
    workflow_id: str | None = Field(default=None, alias="workflow", max_length=256, pattern=NO_CONTROL_CHARACTERS)
    status: MessageStatus | None = None
    before: str | None = Field(default=None, max_length=200)

    @field_validator("received_from", "received_to", mode="before")
    @classmethod
    def _time(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return _moment(value)
            except ValueError:
                raise ValueError("a date (2026-12-01) or a time (2026-12-01T14:30, UTC)") from None
        return value

    def cursor(self) -> tuple[datetime, UUID] | None:
        """Where a page starts: after the last message of the one before (newest first)."""
        if self.before is None:
            return None
        moment, _, event_id = self.before.partition("|")
        try:
            return datetime.fromisoformat(moment), UUID(event_id)
        except ValueError:
            raise InvalidInput("not a page of this search", field="before") from None

    def filter(self) -> MessageFilter:
        return MessageFilter(
            status=self.status, event_type=self.event_type, message_type=self.message_type,
            workflow_id=self.workflow_id, received_from=self.received_from, received_to=self.received_to,
        )  # fmt: skip


def _search(asked: Asked) -> MessageSearch:
    return parsed(MessageSearch, asked.req.params)


def search(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    asked_for = _search(asked)
    store = asked.store
    views = store.views(tenant_id)
    up_to_date(store, tenant_id, MESSAGES)
    match = asked_for.filter()
    rows = list_messages(
        views, status=match.status, event_type=match.event_type, message_type=match.message_type,
        workflow_id=match.workflow_id,
        received_from=match.received_from, received_to=match.received_to, after=asked_for.cursor(),
        limit=PAGE_SIZE + 1, newest_first=True,
    )  # fmt: skip
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    filters = {
        "from": asked.query("from"), "to": asked.query("to"), "type": asked_for.event_type,
        "messageType": asked_for.message_type, "workflow": asked_for.workflow_id, "status": asked_for.status,
    }  # fmt: skip
    last = rows[-1] if rows else None
    cursor = f"{last.received_at.isoformat()}|{last.event_id}" if last else None
    following = path("tenants", tenant_id, "messages", **filters, before=cursor) if more else None
    return asked.page(
        "messages.html", "Messages", tenant_id=tenant_id, section="messages", rows=rows, filters=filters,
        total=count_messages(views, match, cap=COUNT_CAP), cap=COUNT_CAP, following=following,
        first=path("tenants", tenant_id, "messages", **filters) if asked_for.before else None,
        statuses=MessageStatus.__args__, types=MessageEventType.__args__,  # type: ignore[attr-defined]
    )  # fmt: skip


def _event_id(asked: Asked) -> UUID:
    try:
        return UUID(asked.route("eventId"))
    except ValueError:
        raise Missing(f"{asked.route('eventId')!r} is not an event id") from None


def message(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    event_id = _event_id(asked)
    store = asked.store
    row = read_message(store, tenant_id, event_id)
    if row is None:
        raise Missing(f"no message {event_id} was received by this tenant")
    tenant = store.tenant(tenant_id)
    event = tenant.get_event(event_id)
    payload: bytes | None = None
    payload_problem: str | None = None
    if event is not None:
        try:
            payload = tenant.payload_of(event)
        except EventStoreError as exc:  # archived (rehydrating), erased, missing: said, not a failed page
            payload_problem = str(exc)
    shown = payload[:MAX_SHOWN_PAYLOAD] if payload is not None else None
    executions = executions_of_message(store, tenant_id, event_id) or []
    replayed = asked.query("replay")
    return asked.page(
        "message.html", f"Message {event_id}", tenant_id=tenant_id, section="messages", row=row, event=event,
        payload_text=shown.decode("utf-8", "replace") if shown is not None else None,
        payload_json=event is not None and is_json_content_type(event.content_type),
        truncated=payload is not None and len(payload) > MAX_SHOWN_PAYLOAD, payload_size=len(payload or b""),
        payload_problem=payload_problem, executions=executions, replayed=replayed,
        sha256=bytes(row.payload_sha256).hex(),
    )  # fmt: skip


def payload(asked: Asked) -> Answer:
    """The exact payload, whole, as a download."""
    tenant_id = asked.tenant_id()
    event_id = _event_id(asked)
    tenant = asked.store.tenant(tenant_id)
    event = tenant.get_event(event_id)
    if event is None:
        raise Missing(f"no event {event_id} in this tenant")
    extension = "json" if is_json_content_type(event.content_type) else "bin"
    return Download(tenant.payload_of(event), event.content_type, f"{event_id}.{extension}")


def replay_one(asked: Asked) -> Answer:
    """The replay button: the same operation as `POST /tenants/{t}/messages/{id}/replay`, recorded as asked by
    the signed-in operator."""
    tenant_id = asked.tenant_id()
    event_id = _event_id(asked)
    reason = (asked.form.get("reason") or "").strip()
    if not reason:
        raise InvalidInput("say why (it is recorded with the replay)", field="reason")
    started = replay.replay_message(
        asked.store, asked.settings, tenant_id, event_id, reason=reason, requested_by=asked.who
    )
    assert isinstance(started, replay.Started)
    return Redirect(path("tenants", tenant_id, "messages", event_id, replay=started.job.job_id))


ROUTES = (
    ConsoleRoute("console_messages", f"{TENANT}/messages", search),
    ConsoleRoute("console_message", f"{TENANT}/messages/{{eventId}}", message),
    ConsoleRoute("console_message_payload", f"{TENANT}/messages/{{eventId}}/payload", payload),
    ConsoleRoute("console_message_replay", f"{TENANT}/messages/{{eventId}}/replay", replay_one, ("POST",)),
)
