"""What a view is: a name, its tables, and the handler that applies a batch of events to them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from eventstore.models import RecordedEvent
from eventstore.store import ViewWriter

Handler = Callable[[ViewWriter, Sequence[RecordedEvent]], None]


class AgeOut(Protocol):
    """Retention's pass over a view: drop the view's own copies of payload content recorded before the
    cutoff, leaving references to the events (read like any payload, from cold storage once archived); how
    many rows."""

    def __call__(self, writer: ViewWriter, *, cutoff: datetime) -> int: ...


@dataclass(frozen=True)
class View:
    """A named reader of a tenant's all-stream that keeps tables of its own.

    `tables` maps the names a handler's statements use (`{instances}`) to the tables in the tenant's
    schema, which a migration of the store creates (`store/migrations/tenant/`). `apply` must give the
    same tables for the same events whatever the batches they come in.
    """

    name: str
    tables: Mapping[str, str]
    apply: Handler
    description: str
    age_out: AgeOut | None = None
