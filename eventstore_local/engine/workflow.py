"""The sample workflow a `deal.won` message runs: create a CRM record, then send an email about it.

Each step goes through the trace client with attempts, so a destination that fails shows in the trace as
the step that failed, its input, the destination's status and body, and how many attempts were made.
Each step carries an idempotency key made of the message's event id and the step's name, the same in every
execution of that message: a message processed again (redelivered or replayed) skips a step that already
succeeded (StepSkipped in its trace) and reuses its output instead of creating a second CRM record.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from pydantic import JsonValue

from eventstore.client import ExecutionRun, call_destination
from eventstore_local.engine.messages import Deal

CREATE_CRM_RECORD = "create-crm-record"
SEND_EMAIL = "send-email"


def step_key(run: ExecutionRun, step: str) -> str:
    """The idempotency key of `step` in `run`: `<message event id>/<step name>`, stable across the executions
    of one message and distinct between messages (the operationId stands in for an unrecorded message)."""
    return f"{run.message_event_id or run.operation_id or run.execution_id}/{step}"


@dataclass
class DealWorkflow:
    crm_url: str
    email_url: str
    attempts: int = 3
    backoff: float = 0.1
    timeout: float = 5.0

    def __post_init__(self) -> None:
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def run(self, run: ExecutionRun, deal: Deal) -> None:
        # Completed steps are skipped in every execution, not only replays: a message that comes back after
        # the engine stopped midway (a redelivery) must not create a second record either.
        record: JsonValue = {
            "customer": deal.customer,
            "email": deal.email,
            "amount": deal.amount,
            "deal": deal.deal_id,
        }
        created = run.run_step(
            CREATE_CRM_RECORD,
            lambda step: self._post(f"{self.crm_url}/records", record, "crm"),
            input=record,
            idempotency_key=step_key(run, CREATE_CRM_RECORD),
            attempts=self.attempts,
            backoff=self.backoff,
            skip_completed=True,
        )
        record_id = created.get("recordId") if isinstance(created, dict) else None
        mail: JsonValue = {
            "to": deal.email,
            "subject": f"Welcome aboard, {deal.customer}",
            "crmRecordId": record_id,
        }
        run.run_step(
            SEND_EMAIL,
            lambda step: self._post(f"{self.email_url}/messages", mail, "email"),
            input=mail,
            idempotency_key=step_key(run, SEND_EMAIL),
            attempts=self.attempts,
            backoff=self.backoff,
            skip_completed=True,
        )

    def _post(self, url: str, body: JsonValue, name: str) -> JsonValue:
        return call_destination(self.session, "POST", url, json=body, timeout=self.timeout, name=name)
