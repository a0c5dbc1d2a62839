"""The console's templates (package data, autoescaped) and the filters they format values with."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

import jinja2

BASE = "/api/console"
"""Where the console lives (the Functions host reserves routes that start with `admin`)."""

NOTHING = "\u2013"
"""What a page shows for no value (an en dash)."""
MAX_SHOWN_PAYLOAD = 64 * 1024
"""A payload over this is shown cut, with a link to download it whole (a browser chokes on megabytes of text)."""


def when(moment: datetime | None) -> str:
    """A time as an operator reads it: UTC, to the second."""
    if moment is None:
        return NOTHING
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def pretty_json(text: str | bytes | None) -> str:
    """JSON indented for reading (the text as it is when it is not JSON)."""
    if text is None:
        return ""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw


def path(*parts: object, **query: object) -> str:
    """A console URL: each part percent-encoded (ids may hold any character), query values left out when None."""
    url = BASE + "".join("/" + quote(str(p), safe="") for p in parts)
    given = {k: str(v) for k, v in query.items() if v is not None and v != ""}
    return url + ("?" + urlencode(given) if given else "")


def percent(part: int, whole: int) -> str:
    return NOTHING if not whole else f"{100 * part / whole:.1f} %"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("eventstore.console", "templates"),
        autoescape=True,  # every tenant id, payload, error and instance id is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, iso=iso, pretty_json=pretty_json, percent=percent)
    env.globals.update(path=path, base=BASE)
    return env


def render(template: str, **context: Any) -> bytes:
    return environment().get_template(template).render(**context).encode("utf-8")
