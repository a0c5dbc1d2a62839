"""Every console route: each page module of `eventstore.console` declares its own (`ROUTES`), and they are
collected here, so that a page is added by adding its module. `eventstore.functions.console` registers them."""

from __future__ import annotations

import importlib
import pkgutil

import eventstore.console
from eventstore.console.pages import ConsoleRoute


def _collect() -> tuple[ConsoleRoute, ...]:
    found: list[ConsoleRoute] = []
    for module in sorted(m.name for m in pkgutil.iter_modules(eventstore.console.__path__)):
        found += getattr(importlib.import_module(f"eventstore.console.{module}"), "ROUTES", ())
    # Routes the Functions host reserves (admin...) are refused by the host itself, locally as in Azure, and
    # tests/local/test_reserved_routes.py checks every function of the app.
    names = [r.name for r in found]
    if len(set(names)) != len(names):
        raise RuntimeError(f"console routes must have unique names: {names}")
    return tuple(found)


ROUTES: tuple[ConsoleRoute, ...] = _collect()
