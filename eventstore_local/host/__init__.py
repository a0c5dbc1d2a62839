"""The project's local Functions host (Core Tools cannot be installed here).

It serves a `func.FunctionApp` from the functions' own binding metadata and runs the same function
objects Azure runs: HTTP triggers on a local HTTP server (routes under `/api`), queue triggers from Azure
Storage queues (Azurite) with the host's retry and poison-queue behaviour, timer triggers on their NCRONTAB
schedules. `DevHost` is the embeddable host (tests); `serve()` runs one in the foreground;
`python -m eventstore_local.host` is the command line (`eventstore_local.host.cli`).

Names are imported on first use, so that `eventstore_local.host.cli` stays cheap to import for the
`eventstore` command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventstore_local.host.config import ConfigError, HostConfig, QueueOptions
    from eventstore_local.host.host import DevHost, load_app, serve

__all__ = ["ConfigError", "DevHost", "HostConfig", "QueueOptions", "load_app", "serve"]

_WHERE = {
    "ConfigError": "eventstore_local.host.config",
    "HostConfig": "eventstore_local.host.config",
    "QueueOptions": "eventstore_local.host.config",
    "DevHost": "eventstore_local.host.host",
    "load_app": "eventstore_local.host.host",
    "serve": "eventstore_local.host.host",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'eventstore_local.host' has no attribute {name!r}")
