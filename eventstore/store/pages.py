"""Read limits and the all-stream page every commit-ordered read returns (`read_all`, search, the feed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from eventstore.errors import InvalidInput
from eventstore.models import Checkpoint, Page

# The most events one read returns; larger reads page.
MAX_LIMIT = 100_000

_Entry = TypeVar("_Entry")


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")


def page_of(rows: Sequence[Any], limit: int, after: Checkpoint, make: Callable[[Any], _Entry]) -> Page[_Entry]:
    """A page in all-stream order from up to `limit + 1` rows (each read by `make`, whose first two
    fields are the global position and the transaction id): the extra row only says more wait."""
    entries = [make(row) for row in rows[:limit]]
    if rows:
        last = rows[min(limit, len(rows)) - 1]
        after = Checkpoint(last[1], last[0])
    return Page(events=entries, next_checkpoint=after, more=len(rows) > limit)
