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
    names = [r.name for r in found]
    if len(set(names)) != len(names) or any(r.name.startswith("admin") or r.route.startswith("admin") for r in found):
        raise RuntimeError(f"console routes must have unique names not starting with admin: {names}")
    return tuple(found)


ROUTES: tuple[ConsoleRoute, ...] = _collect()
