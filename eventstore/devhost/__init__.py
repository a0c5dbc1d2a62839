"""The project's local Functions host (Core Tools cannot be installed here).

It serves a `func.FunctionApp` from the functions' own binding metadata and runs the same function
objects Azure runs: HTTP triggers on a local HTTP server (routes under `/api`), queue triggers from Azure
Storage queues (Azurite) with the host's retry and poison-queue behaviour, timer triggers on their NCRONTAB
schedules. `DevHost` is the embeddable host (tests); `serve()` runs one in the foreground;
`python -m eventstore.devhost` is the command line (`eventstore.devhost.cli`).

Names are imported on first use, so that `eventstore.devhost.cli` stays cheap to import for the
`eventstore` command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventstore.devhost.config import ConfigError, HostConfig, QueueOptions
    from eventstore.devhost.host import DevHost, load_app, serve

__all__ = ["ConfigError", "DevHost", "HostConfig", "QueueOptions", "load_app", "serve"]

_WHERE = {
    "ConfigError": "eventstore.devhost.config",
    "HostConfig": "eventstore.devhost.config",
    "QueueOptions": "eventstore.devhost.config",
    "DevHost": "eventstore.devhost.host",
    "load_app": "eventstore.devhost.host",
    "serve": "eventstore.devhost.host",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'eventstore.devhost' has no attribute {name!r}")
