"""Views: tables kept current from each tenant's all-stream, so that an operator's question is answered
from a table, not by re-reading streams. A view is one module here (its handler and reads) plus the
store migration that creates its tables; `VIEWS` lists them in the order a run applies them.
"""

from eventstore.views.failure_counts import FAILURE_COUNTS
from eventstore.views.instances import INSTANCES, list_instances
from eventstore.views.messages import MESSAGES
from eventstore.views.runner import ViewRun, ViewRunner
from eventstore.views.traces import EXECUTIONS
from eventstore.views.view import View

VIEWS: tuple[View, ...] = (INSTANCES, MESSAGES, EXECUTIONS, FAILURE_COUNTS)

__all__ = [
    "EXECUTIONS",
    "FAILURE_COUNTS",
    "INSTANCES",
    "MESSAGES",
    "VIEWS",
    "View",
    "ViewRun",
    "ViewRunner",
    "list_instances",
]
