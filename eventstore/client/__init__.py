"""The engine-side client: a typed helper an engine wraps around its work to report executions and steps
(docs/traces.md) over HTTP, with bounded retries. It imports only the kernel of `eventstore`, so an engine
can depend on it without the store.
"""

from eventstore.client.errors import (
    ClientError,
    DestinationError,
    ProblemAnswer,
    RequestRefused,
    ServerError,
    StoreUnreachable,
)
from eventstore.client.models import (
    ExecutionRecord,
    MessageAccepted,
    MessageRecord,
    OutcomesAppended,
    RunComparison,
    SkippedFor,
    StepAttempt,
    StepPair,
    StepRecord,
    StepReference,
    StepSkipped,
    Trace,
    TraceError,
    TraceEventType,
)
from eventstore.client.recorder import ExecutionRun, StepRun, TraceRecorder, call_destination, trace_error
from eventstore.client.store_client import EventStoreClient, OutcomeItem
from eventstore.client.transport import RetryPolicy

__all__ = [
    "ClientError",
    "DestinationError",
    "EventStoreClient",
    "ExecutionRecord",
    "ExecutionRun",
    "MessageAccepted",
    "MessageRecord",
    "OutcomeItem",
    "OutcomesAppended",
    "ProblemAnswer",
    "RequestRefused",
    "RetryPolicy",
    "RunComparison",
    "ServerError",
    "SkippedFor",
    "StepAttempt",
    "StepPair",
    "StepRecord",
    "StepReference",
    "StepRun",
    "StepSkipped",
    "StoreUnreachable",
    "Trace",
    "TraceError",
    "TraceEventType",
    "TraceRecorder",
    "call_destination",
    "trace_error",
]
