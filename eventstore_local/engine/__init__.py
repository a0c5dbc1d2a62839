"""A sample workflow engine for local runs, tests and the demo: `deal.won` messages from a queue run
"create CRM record, then send email" against two local destinations, traced with `eventstore.client`."""

from eventstore_local.engine.engine import EngineResult, SampleEngine
from eventstore_local.engine.local import LocalEngine
from eventstore_local.engine.messages import (
    DEAL_WON,
    DEAL_WORKFLOW_ID,
    ENGINE_QUEUE,
    Deal,
    deal_won_envelope,
    send_to_engine,
)
from eventstore_local.engine.workflow import CREATE_CRM_RECORD, SEND_EMAIL, DealWorkflow

__all__ = [
    "CREATE_CRM_RECORD",
    "DEAL_WON",
    "DEAL_WORKFLOW_ID",
    "ENGINE_QUEUE",
    "SEND_EMAIL",
    "Deal",
    "DealWorkflow",
    "EngineResult",
    "LocalEngine",
    "SampleEngine",
    "deal_won_envelope",
    "send_to_engine",
]
