"""The domain's reads over the store: history pages, rebuilt state (at any sequence number), one event's
exact payload, audit search, instances by status, and the traces (`query.traces`: messages, executions
and steps, failure counts). The HTTP functions and the local tools call these; the store below knows
nothing of workflows."""

from eventstore.query import traces
from eventstore.query.history import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MAX_SEQUENCE,
    PAGE_PAYLOAD_BUDGET,
    HistoryPage,
    check_limit,
    get_event,
    inlines_payload,
    read_history,
    search_audit,
)
from eventstore.query.instances import catch_up, list_instances, up_to_date
from eventstore.query.state import instance_state, rebuild_state, replay
from eventstore.workflow_state import fold

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "MAX_SEQUENCE",
    "PAGE_PAYLOAD_BUDGET",
    "HistoryPage",
    "catch_up",
    "check_limit",
    "fold",
    "get_event",
    "inlines_payload",
    "instance_state",
    "list_instances",
    "read_history",
    "rebuild_state",
    "replay",
    "search_audit",
    "traces",
    "up_to_date",
]
