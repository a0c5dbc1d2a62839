"""The console's stylesheet and script, shipped as package data and served by the app itself (no CDN)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from eventstore.console.pages import Answer, Asked, ConsoleRoute, Missing, Static

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


@cache
def _read(name: str) -> bytes:
    return (files("eventstore.console") / "static" / name).read_bytes()


def asset(asked: Asked) -> Answer:
    name = asked.route("name")
    kind = next((t for ext, t in _TYPES.items() if name.endswith(ext)), None)
    if kind is None or "/" in name or name.startswith("."):
        raise Missing(f"no asset {name!r}")
    try:
        return Static(_read(name), kind)
    except FileNotFoundError:
        raise Missing(f"no asset {name!r}") from None


ROUTES = (ConsoleRoute("console_static", "console/static/{name}", asset),)
