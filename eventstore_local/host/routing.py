"""HTTP route templates as the Functions host reads them (ASP.NET Core syntax).

Supported: literal segments (matched case-insensitively), `{name}`, optional `{name?}`, defaults
`{name=value}`, catch-all `{*rest}` / `{**rest}`, complex segments (`{name}.{ext}`), and constraints
`int long bool guid alpha double float decimal datetime required minlength(n) maxlength(n) length(n)
length(a,b) min(n) max(n) range(a,b) regex(expr)`, chained as `{id:int:min(1)}`.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_GUID = re.compile(
    r"^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"
    r"|\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\))$",
    re.IGNORECASE,
)


class RouteError(ValueError):
    """A route template the host cannot use."""


def _integer(low: int, high: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return re.fullmatch(r"[+-]?\d+", value) is not None and low <= int(value) <= high

    return check


def _number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _guid(value: str) -> bool:
    if not _GUID.match(value):
        return False
    uuid.UUID(value.strip("{}()"))
    return True


_SIMPLE: dict[str, Callable[[str], bool]] = {
    "int": _integer(*_INT32),
    "long": _integer(*_INT64),
    "bool": lambda v: v.lower() in {"true", "false"},
    "guid": _guid,
    "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
    "double": _number,
    "float": _number,
    "decimal": _number,
    "datetime": _datetime,
    "required": lambda v: v != "",
}


def _constraint(text: str, template: str) -> Callable[[str], bool]:
    name, paren, rest = text.partition("(")
    name = name.strip().lower()
    if not paren:
        if name in _SIMPLE:
            return _SIMPLE[name]
        raise RouteError(f"route {template!r}: unknown constraint {text!r}")
    if not rest.endswith(")"):
        raise RouteError(f"route {template!r}: malformed constraint {text!r}")
    argument = rest[:-1]
    if name == "regex":
        try:
            pattern = re.compile(argument, re.IGNORECASE)
        except re.error as exc:
            raise RouteError(f"route {template!r}: bad regex constraint {argument!r}: {exc}") from exc
        return lambda v: pattern.search(v) is not None  # ASP.NET: unanchored unless the pattern anchors itself
    try:
        numbers = [int(a) for a in argument.split(",")]
    except ValueError as exc:
        raise RouteError(f"route {template!r}: malformed constraint {text!r}") from exc
    checks: dict[tuple[str, int], Callable[[str], bool]] = {
        ("minlength", 1): lambda v: len(v) >= numbers[0],
        ("maxlength", 1): lambda v: len(v) <= numbers[0],
        ("length", 1): lambda v: len(v) == numbers[0],
        ("length", 2): lambda v: numbers[0] <= len(v) <= numbers[1],
        ("min", 1): lambda v: _integer(*_INT64)(v) and int(v) >= numbers[0],
        ("max", 1): lambda v: _integer(*_INT64)(v) and int(v) <= numbers[0],
        ("range", 2): lambda v: _integer(*_INT64)(v) and numbers[0] <= int(v) <= numbers[1],
    }
    check = checks.get((name, len(numbers)))
    if check is None:
        raise RouteError(f"route {template!r}: unknown constraint {text!r}")
    return check


@dataclass
class _Parameter:
    name: str
    constraints: list[Callable[[str], bool]] = field(default_factory=list)
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


@dataclass
class _Segment:
    parts: list[str | _Parameter]  # literal text or parameters
    pattern: re.Pattern[str] | None = None  # complex segments only

    @property
    def parameter(self) -> _Parameter | None:
        """The parameter when the segment is exactly one parameter."""
        if len(self.parts) == 1 and isinstance(self.parts[0], _Parameter):
            return self.parts[0]
        return None

    @property
    def precedence(self) -> int:
        """ASP.NET Core's inbound precedence digit: lower wins."""
        parameter = self.parameter
        if parameter is None:
            return 1 if all(isinstance(p, str) for p in self.parts) else 2
        if parameter.catch_all:
            return 5
        return 3 if parameter.constraints else 4


def _split_parameter(body: str, template: str) -> _Parameter:
    """`name[:constraint...][?|=default]`, or `*name` / `**name`."""
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    tokens: list[str] = []
    depth, current = 0, ""
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == ":" and depth == 0:
            tokens.append(current)
            current = ""
        else:
            current += char
    tokens.append(current)
    name, constraints = tokens[0], tokens[1:]
    optional, default = False, None
    last = constraints[-1] if constraints else name
    if "=" in last and not last.startswith("regex("):
        last, default = last.split("=", 1)
    if last.endswith("?"):
        last, optional = last[:-1], True
    if constraints:
        constraints[-1] = last
    else:
        name = last
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteError(f"route {template!r}: bad parameter name {name!r}")
    return _Parameter(
        name=name,
        constraints=[_constraint(c, template) for c in constraints],
        optional=optional or default is not None,
        default=default,
        catch_all=catch_all,
    )


def _parse_segment(text: str, template: str) -> _Segment:
    parts: list[str | _Parameter] = []
    literal, i = "", 0
    while i < len(text):
        char = text[i]
        if char == "{" and text[i : i + 2] == "{{":
            literal += "{"
            i += 2
        elif char == "}" and text[i : i + 2] == "}}":
            literal += "}"
            i += 2
        elif char == "{":
            j, body = i + 1, ""
            while j < len(text):
                if text[j] in "{}" and text[j : j + 2] in ("{{", "}}"):
                    body += text[j]
                    j += 2
                elif text[j] == "}":
                    break
                else:
                    body += text[j]
                    j += 1
            if j >= len(text):
                raise RouteError(f"route {template!r}: unclosed '{{'")
            if literal:
                parts.append(literal)
                literal = ""
            parts.append(_split_parameter(body, template))
            i = j + 1
        elif char == "}":
            raise RouteError(f"route {template!r}: unmatched '}}'")
        else:
            literal += char
            i += 1
    if literal:
        parts.append(literal)
    segment = _Segment(parts)
    if segment.parameter is None and any(isinstance(p, _Parameter) for p in parts):
        regex = "".join(f"(?P<p{n}>.+)" if isinstance(p, _Parameter) else re.escape(p) for n, p in enumerate(parts))
        segment.pattern = re.compile(f"^{regex}$", re.IGNORECASE)
        if any(isinstance(p, _Parameter) and (p.optional or p.catch_all) for p in parts):
            raise RouteError(f"route {template!r}: optional and catch-all parameters must fill a whole segment")
    return segment


class RouteTemplate:
    """A compiled route template; `match(path)` gives its route parameters or None."""

    def __init__(self, template: str) -> None:
        self.template = template
        text = template.strip().strip("/")
        self.segments = [_parse_segment(s, template) for s in text.split("/")] if text else []
        names: list[str] = []
        for index, segment in enumerate(self.segments):
            for part in segment.parts:
                if isinstance(part, _Parameter):
                    if part.catch_all and index != len(self.segments) - 1:
                        raise RouteError(f"route {template!r}: a catch-all parameter must be the last segment")
                    names.append(part.name.lower())
        if len(names) != len(set(names)):
            raise RouteError(f"route {template!r}: a parameter name is used twice")
        self.precedence = tuple(s.precedence for s in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        """`path` without the route prefix, still percent-encoded (so an encoded '/' stays in its segment)."""
        raw = [s for s in path.strip("/").split("/")] if path.strip("/") else []
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            parameter = segment.parameter
            if parameter is not None and parameter.catch_all:
                rest = "/".join(unquote(s) for s in raw[index:])
                if rest == "" and parameter.default is not None:
                    rest = parameter.default
                if rest and not parameter.accepts(rest):
                    return None
                if rest:
                    values[parameter.name] = rest
                return values
            if index >= len(raw):
                if not _may_be_omitted(self.segments[index:]):
                    return None
                for later in self.segments[index:]:
                    omitted = later.parameter
                    if omitted is not None and omitted.default is not None:
                        values[omitted.name] = omitted.default
                return values
            text = unquote(raw[index])
            if parameter is not None:
                if text == "" or not parameter.accepts(text):
                    return None
                values[parameter.name] = text
            elif segment.pattern is None:
                if text.lower() != "".join(str(p) for p in segment.parts).lower():
                    return None
            else:
                match = segment.pattern.match(text)
                if match is None:
                    return None
                for n, part in enumerate(segment.parts):
                    if isinstance(part, _Parameter):
                        value = match.group(f"p{n}")
                        if not part.accepts(value):
                            return None
                        values[part.name] = value
        if len(raw) > len(self.segments):
            return None
        return values


def _may_be_omitted(segments: Sequence[_Segment]) -> bool:
    for segment in segments:
        parameter = segment.parameter
        if parameter is None or not (parameter.optional or parameter.catch_all):
            return False
    return True
