"""The process-wide store the functions use: settings read once, pools opened on first use."""

from __future__ import annotations

from functools import cache

from eventstore.settings import Settings
from eventstore.store import EventStore


@cache
def get_store() -> EventStore:
    return EventStore(Settings())
