"""Erasure from the console: a data subject (a workflow instance, a user id, or a value at JSON paths) with a
reason, a dry run that says what would be erased, then the erasure itself, confirmed. It is the same operation
as `POST /tenants/{t}/erasures` (its request model validates the form), recorded with the signed-in operator as
who asked; the tenant's past erasures are listed from their records in the maintenance stream (never the
erased value, which the records do not keep)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute, Redirect
from eventstore.console.render import path
from eventstore.errors import InvalidInput
from eventstore.event_types import EventType
from eventstore.http.erasure_models import ErasureRequest
from eventstore.json_paths import JsonPath
from eventstore.models import invalid_input_from
from eventstore.retention.erasure import ErasureResult, SubjectKind, ValueSubject, erase, redact_value
from eventstore.store import MAINTENANCE_STREAM_ID

KINDS = {"instance": "workflowInstanceId", "user": "userId", "value": "jsonValue"}
SHOWN_EVENTS = 50
SHOWN_RECORDS = 50


@dataclass(frozen=True)
class PastErasure:
    erasure_id: str
    at: datetime
    by: str
    reason: str
    mode: str
    kind: str
    events: int
    paths: list[str]


def _field(field: str | None) -> str:
    """A request model's field as the console's form names it."""
    if not field:
        return "form"
    if (line := re.fullmatch(r"subject\.jsonValue\.paths\[(\d+)\]", field)) is not None:
        return f"paths (line {int(line.group(1)) + 1})"
    if field.startswith("subject.jsonValue.eventTypes"):
        return "eventTypes"
    if field.startswith("subject"):
        return "value"
    return {"requestedBy": "who", "dryRun": "dryrun"}.get(field, field)


def _request(values: dict[str, str], who: str, *, dry_run: bool) -> ErasureRequest:
    kind = values.get("kind") or "instance"
    if kind not in KINDS:
        raise InvalidInput("instance, user or value", field="kind")
    value = values.get("value") or ""
    member: Any = value
    if kind == "value":
        paths = [line.strip() for line in (values.get("paths") or "").splitlines() if line.strip()]
        types = [t.strip() for t in (values.get("eventTypes") or "").split(",") if t.strip()]
        member = {"value": value, "paths": paths, "eventTypes": types}
    asked = {"subject": {KINDS[kind]: member}, "reason": values.get("reason") or "", "requestedBy": who,
             "dryRun": dry_run}  # fmt: skip
    try:
        return ErasureRequest.model_validate(asked)
    except ValidationError as exc:
        problem = invalid_input_from(exc)
        raise InvalidInput(str(problem).split(": ", 1)[-1], field=_field(problem.field)) from None


def _run(asked: Asked, tenant_id: str, request: ErasureRequest) -> ErasureResult:
    subject = request.subject
    if subject.json_value is not None:
        value = subject.json_value
        return redact_value(
            asked.store, tenant_id,
            ValueSubject(value.value, tuple(JsonPath.parse(p) for p in value.paths), tuple(value.event_types)),
            reason=request.reason, requested_by=asked.who, dry_run=request.dry_run,
        )  # fmt: skip
    kind: SubjectKind = "workflowInstance" if subject.workflow_instance_id is not None else "user"
    named = subject.workflow_instance_id if subject.workflow_instance_id is not None else subject.user_id
    assert named is not None
    return erase(asked.store, tenant_id, kind, named, reason=request.reason, requested_by=asked.who,
                 dry_run=request.dry_run)  # fmt: skip


def _past(asked: Asked, tenant_id: str) -> list[PastErasure]:
    tenant = asked.store.tenant(tenant_id)
    records = [
        e for e in tenant.read_stream(MAINTENANCE_STREAM_ID, backwards=True, limit=500)
        if e.event_type == EventType.PAYLOADS_ERASED
    ][:SHOWN_RECORDS]  # fmt: skip
    past = []
    for record in records:
        body = json.loads(record.payload or b"{}")
        past.append(
            PastErasure(
                str(record.event_id), record.recorded_at, str(body.get("requestedBy", "")), str(body.get("reason", "")),
                str(body.get("mode", "")), str(body.get("subject", {}).get("kind", "")), int(body.get("events", 0)),
                [str(p) for p in body.get("paths", [])],
            )
        )  # fmt: skip
    return past


def erasures(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    values = {k: v for k, v in asked.req.params.items()}
    dry: ErasureResult | None = None
    if asked.query("dryrun") == "1":
        dry = _run(asked, tenant_id, _request(values, asked.who, dry_run=True))
    done = asked.query("done")
    return asked.page(
        "erasures.html", "Erasure", tenant_id=tenant_id, section="erasures", values=values,
        kind=values.get("kind") or "instance", dry=dry, shown=SHOWN_EVENTS, past=_past(asked, tenant_id),
        done=done, erased=asked.query("erased"), pending=asked.query("pending"),
    )  # fmt: skip


def erase_now(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    values = dict(asked.form)
    if values.get("confirm") != "1":
        raise InvalidInput("confirm that the erasure cannot be undone", field="confirm")
    result = _run(asked, tenant_id, _request(values, asked.who, dry_run=False))
    done = result.erasure_id or "nothing"
    return Redirect(
        path("tenants", tenant_id, "erasures", done=done, erased=result.erased, pending=result.pending or None)
    )


ROUTES = (
    ConsoleRoute("console_erasures", f"{TENANT}/erasures", erasures),
    ConsoleRoute("console_erase", f"{TENANT}/erasures", erase_now, ("POST",)),
)
