"""Which payloads get a JSONB copy, and why a JSON payload was refused.

The hot path leaves JSON validation to PostgreSQL (the JSONB cast runs anyway) and only looks here
for the two things JSONB cannot hold but JSON allows: `\\u0000` and unpaired surrogate escapes. Such
payloads are still stored byte-exact; they just get no JSONB copy to search.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from eventstore.models import is_json_content_type

MAX_JSON_DEPTH = 512
"""How deeply arrays and objects may nest in a JSON payload that arrives over HTTP or a queue. Python's
parser gives up near 1,000 levels (less on a deep call stack), so without a limit of our own the answer
to a deep payload would depend on where it was parsed; .NET's System.Text.Json stops at 64 by default."""

# A cheap byte scan: only payloads with one of these escapes need the full walk below.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UNREPRESENTABLE = re.compile("[\x00\ud800-\udfff]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_strict(payload: bytes) -> Any:
    """Parse as PostgreSQL would: UTF-8 only, no NaN/Infinity. Raises ValueError with the reason."""
    text = payload.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return json.loads(text, parse_constant=_refuse_constant)


def _holds_unrepresentable(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNREPRESENTABLE.search(item):
                return True
        elif isinstance(item, dict):
            for key, child in item.items():
                if _UNREPRESENTABLE.search(key):
                    return True
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return False


def wants_json_copy(payload: bytes, content_type: str) -> bool:
    """True when the payload should get a JSONB copy; PostgreSQL still validates it on insert."""
    if not is_json_content_type(content_type):
        return False
    if not _SUSPECT_ESCAPE.search(payload):
        return True
    try:
        parsed = parse_strict(payload)
    except (ValueError, RecursionError):
        return True  # let the insert fail; `json_problem` names the reason
    return not _holds_unrepresentable(parsed)


def json_problem(payload: bytes) -> str | None:
    """Why a payload declared as JSON is not JSON, or None if it is."""
    try:
        parse_strict(payload)
    except UnicodeDecodeError as exc:
        return f"not UTF-8 ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    except RecursionError:
        # Deeper than Python's parser goes; PostgreSQL's stops earlier still. Not a reason to refuse what
        # arrived: it is kept byte-exact without a JSONB copy.
        return None
    return None


# The unrolled form of "(?:[^"\\]|\\.)*": about three times faster on long strings.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_depth(payload: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    # The walk runs in C: strings blanked, every byte but brackets deleted, brackets turned into +1/-1
    # (signed bytes), and the running sum's maximum taken.
    steps = _STRING.sub(b'""', payload).translate(None, _NOT_BRACKETS).translate(_BRACKET_STEPS)
    return max(accumulate(memoryview(steps).cast("b")), default=0)


def nests_deeper_than(payload: bytes, limit: int) -> int | None:
    """The payload's depth when it is more than `limit`, else None (cheap when it has few brackets)."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return None
    depth = json_depth(payload)
    return depth if depth > limit else None


# Python's int() refuses more than 4,300 digits (sys.int_info.default_max_str_digits), and so does its
# json module, on which many clients rely; JavaScript and .NET read such numbers (as floats or big ints).
_PYTHON_MAX_INT_DIGITS = 4300
# Anchored at the start of a digit run: `\d{4301,}` alone is tried again at every position inside a long
# run, which is quadratic (1.3 s for a 258 KB payload of 4,300-digit numbers, on every read).
_LONG_INTEGER = re.compile(rb"(?<![0-9])[0-9]{%d}" % (_PYTHON_MAX_INT_DIGITS + 1))
INLINE_DEPTH_LIMIT = 900
"""Deeper than this, a payload is not put inline in a page: Python's json stops near 1,000 levels, less the
page's own and the caller's. Ingest refuses payloads past `MAX_JSON_DEPTH`, so only the Python API can
store one this deep."""


def common_parsers_refuse(payload: bytes) -> bool:
    """Whether valid JSON would still break common clients' parsers once inline in a page: an integer of
    more than 4,300 digits (Python's json) or nesting past `INLINE_DEPTH_LIMIT`."""
    if len(payload) > _PYTHON_MAX_INT_DIGITS and _LONG_INTEGER.search(payload):
        return True  # a digit run inside a string also counts: rare, and the exact text is returned either way
    return nests_deeper_than(payload, INLINE_DEPTH_LIMIT) is not None


# numeric holds up to 131072 digits before the point and an exponent of about +-16383.
_HUGE_NUMBER = re.compile(rb"[eE][+-]?\d{5,}|\d{1000,}")
MAX_JSONB_DEPTH = 1000


def jsonb_may_refuse(payload: bytes) -> bool:
    """Valid JSON that PostgreSQL's JSONB may still refuse: very deep nesting or numbers out of range."""
    return json_depth(payload) > MAX_JSONB_DEPTH or bool(_HUGE_NUMBER.search(_STRING.sub(b'""', payload)))
