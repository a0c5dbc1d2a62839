"""The ingest queues' dead letters (deployment-wide: a poisoned message may name no tenant, or one never
onboarded), filtered to a tenant when reached from its pages or from an alert's link, each with why ingest
could not record it, its exact body, and a redrive button once the cause is fixed (the API's operation,
recorded with who asked)."""

from __future__ import annotations

from eventstore.alerts.poison_queues import PoisonQueues, redrive
from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute, Missing, Redirect
from eventstore.console.render import path
from eventstore.errors import InvalidInput
from eventstore.tenancy import validate_tenant_id

PAGE_SIZE = 50
BODY_SHOWN = 4000
_QUEUES = ("workflow-messages-poison", "workflow-outcomes-poison")


def _letters(asked: Asked, tenant_id: str | None) -> Answer:
    queue = asked.query("queue")
    if queue is not None and queue not in _QUEUES:
        raise InvalidInput(f"one of {', '.join(_QUEUES)}", field="queue")
    text = asked.query("after") or "0"
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput("a dead letter id", field="after")
    message_id = asked.query("messageId")
    if message_id is not None and (len(message_id) > 200 or any(ord(c) < 32 for c in message_id)):
        raise InvalidInput("a queue message id", field="messageId")
    rows = asked.store.queue_dead_letters().list(
        tenant_id=tenant_id, queue=queue, waiting=asked.query("waiting") == "1", after_id=int(text), limit=PAGE_SIZE
    )
    if message_id is not None:
        rows = [r for r in rows if r.message_id == message_id]
    following = (
        path(*(("tenants", tenant_id) if tenant_id else ()), "dead-letters", queue=queue, after=rows[-1].id)
        if len(rows) == PAGE_SIZE
        else None
    )
    return asked.page(
        "dead_letters.html", "Queue dead letters", tenant_id=tenant_id, section="feed", rows=rows,
        following=following, body_shown=BODY_SHOWN, queues=_QUEUES, queue=queue, redriven=asked.query("redriven"),
    )  # fmt: skip


def deployment(asked: Asked) -> Answer:
    tenant = asked.query("tenant")
    return _letters(asked, validate_tenant_id(tenant) if tenant else None)


def of_tenant(asked: Asked) -> Answer:
    return _letters(asked, asked.tenant_id())


def redrive_one(asked: Asked) -> Answer:
    text = asked.route("deadLetterId")
    if not text.isdigit() or len(text) > 18:
        raise Missing(f"{text!r} is not a dead letter id")
    letters = asked.store.queue_dead_letters()
    letter = letters.get(int(text))
    if letter is None:
        raise Missing(f"no dead letter {text}")
    reason = (asked.form.get("reason") or "").strip()
    if not reason or len(reason) > 2000 or any(ord(c) < 32 for c in reason):
        raise InvalidInput("say why (it is recorded with the redrive)", field="reason")
    queues = PoisonQueues.required(asked.settings)
    redrive(asked.store, queues, letter, asked.who, reason)
    where = ("tenants", letter.tenant_id) if letter.tenant_id and asked.form.get("back") == "tenant" else ()
    return Redirect(path(*where, "dead-letters", redriven=letter.id))


ROUTES = (
    ConsoleRoute("console_dead_letters", "console/dead-letters", deployment),
    ConsoleRoute("console_tenant_dead_letters", f"{TENANT}/dead-letters", of_tenant),
    ConsoleRoute("console_dead_letter_redrive", "console/dead-letters/{deadLetterId}/redrive", redrive_one, ("POST",)),
)
