"""The JSON paths an erasure redacts (docs/retention.md, "Redaction of a value"): a small, closed subset of
JSONPath that means the same thing to PostgreSQL (which finds the candidates through the payloads' JSONB
index) and to Python (which rewrites each payload exactly).

    $.customer.email         a member by name
    $["e-mail address"]      a member whose name is not a plain identifier (JSON string syntax)
    $.lines[*].email         every element of an array
    $.lines[0].email         one element
    $.parties.*.email        every member of an object

No filters, recursion or slices: an erasure names the places a value sits, and a path that could mean more
than it says is refused rather than guessed at.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# A \u escape of anything but NUL and the surrogates (which JSONB cannot hold, so no payload's copy has them).
_ESCAPE = (
    r"\\u(?:[1-9a-cA-CeEfF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}"
    r"|0(?:[1-9a-fA-F][0-9a-fA-F]{2}|0(?:[1-9a-fA-F][0-9a-fA-F]|0[1-9a-fA-F])))"
)
PATTERN = (
    r"^\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\.\*|\[\*\]|\[(?:0|[1-9][0-9]{0,8})\]"
    r'|\["(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|' + _ESCAPE + r')*"\])+$'
)
"""The same grammar as one regular expression, for the API's document (a client reads the rule from it). No
surrogate range in it: a raw one cannot arrive in a UTF-8 body, and Rust's regex engine (the API fuzzer's
validator) refuses such a range, which would leave the whole pattern unread."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"\[(0|[1-9][0-9]{0,8})\]")
_QUOTED = re.compile(r'\[("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")\]')
_UNREPRESENTABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Step:
    kind: str
    """"member", "index" or "any" (every element or member)."""
    name: str = ""
    index: int = 0


class JsonPathError(ValueError):
    pass


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        if not text.startswith("$"):
            raise JsonPathError("a path starts with $")
        steps: list[Step] = []
        at = 1
        while at < len(text):
            rest = text[at:]
            if rest.startswith(".*"):
                steps.append(Step("any"))
                at += 2
            elif rest.startswith("[*]"):
                steps.append(Step("any"))
                at += 3
            elif rest.startswith("."):
                name = _NAME.match(text, at + 1)
                if name is None:
                    raise JsonPathError(f'a member name after the dot at {at} (write ["..."] for other names)')
                steps.append(Step("member", name=name.group()))
                at = name.end()
            elif (index := _INDEX.match(text, at)) is not None:
                steps.append(Step("index", index=int(index.group(1))))
                at = index.end()
            elif (quoted := _QUOTED.match(text, at)) is not None:
                name = json.loads(quoted.group(1))
                if _UNREPRESENTABLE.search(name):
                    raise JsonPathError(f"the name at {at} holds NUL or a lone surrogate, which no payload can")
                steps.append(Step("member", name=name))
                at = quoted.end()
            else:
                raise JsonPathError(f'unexpected {rest[:12]!r} at {at}: use .name, ["name"], [n], [*] or .*')
        if not steps:
            raise JsonPathError("$ alone names the whole payload: erase the instance or the user instead")
        return cls(text, tuple(steps))

    def postgres_filters(self, value: str) -> list[str]:
        """The jsonpaths that together find every payload holding `value` here (an "any" step may be an array's
        elements or an object's members: both are asked)."""
        variants = [""]
        for step in self.steps:
            if step.kind == "member":
                variants = [v + "." + _jsonpath_string(step.name) for v in variants]
            elif step.kind == "index":
                variants = [v + f"[{step.index}]" for v in variants]
            else:
                variants = [v + suffix for v in variants for suffix in ("[*]", ".*")]
        condition = f" ? (@ == {_jsonpath_string(value)})"
        return [f"${v}{condition}" for v in variants]


def _jsonpath_string(text: str) -> str:
    # JSON's string syntax with every non-ASCII character escaped is also PostgreSQL jsonpath's.
    return json.dumps(text, ensure_ascii=True)


def redact(document: Any, path: JsonPath, value: str, marker: str) -> tuple[Any, int]:
    """`document` with `value` replaced by `marker` wherever `path` leads to exactly that string, and how many."""
    count = 0

    def walk(node: Any, depth: int) -> Any:
        nonlocal count
        if depth == len(path.steps):
            if isinstance(node, str) and node == value:
                count += 1
                return marker
            return node
        step = path.steps[depth]
        if step.kind == "member" and isinstance(node, dict) and step.name in node:
            node[step.name] = walk(node[step.name], depth + 1)
        elif step.kind == "index" and isinstance(node, list) and step.index < len(node):
            node[step.index] = walk(node[step.index], depth + 1)
        elif step.kind == "any" and isinstance(node, list):
            node[:] = [walk(item, depth + 1) for item in node]
        elif step.kind == "any" and isinstance(node, dict):
            for key in list(node):
                node[key] = walk(node[key], depth + 1)
        return node

    return walk(document, 0), count


def redact_everywhere(document: Any, value: str, marker: str) -> tuple[Any, int]:
    """`document` with every string equal to `value` (member values and array elements) replaced by `marker`:
    for the views' copies, whose shapes are not the payloads' own."""
    count = 0
    stack: list[Any] = [document]
    if isinstance(document, str):
        return (marker, 1) if document == value else (document, 0)
    while stack:
        node = stack.pop()
        items: Any = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in list(items):
            if isinstance(child, str):
                if child == value:
                    node[key] = marker
                    count += 1
            elif isinstance(child, dict | list):
                stack.append(child)
    return document, count
