"""The sample workflow a `deal.won` message runs: create a CRM record, then send an email about it.

Each step goes through the trace client with attempts, so a destination that fails shows in the trace as
the step that failed, its input, the destination's status and body, and how many attempts were made.
Steps carry an idempotency key per deal: a message processed again (redelivered or replayed) reuses a
step that already succeeded instead of creating a second CRM record.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from pydantic import JsonValue

from eventstore.client import ExecutionRun, call_destination
from eventstore_local.engine.messages import Deal

CREATE_CRM_RECORD = "create-crm-record"
SEND_EMAIL = "send-email"


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
            idempotency_key=f"{deal.instance_id}/crm",
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
            idempotency_key=f"{deal.instance_id}/email",
            attempts=self.attempts,
            backoff=self.backoff,
            skip_completed=True,
        )

    def _post(self, url: str, body: JsonValue, name: str) -> JsonValue:
        return call_destination(self.session, "POST", url, json=body, timeout=self.timeout, name=name)
