"""Exact spans of JSON values: a body is parsed value by value with `raw_decode` on the decoded text, so
the text of each member is known exactly and can be stored as the client wrote it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eventstore.errors import InvalidInput
from eventstore.payload_json import MAX_JSON_DEPTH, nests_deeper_than

_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_int(text: str) -> int | float:
    # Python refuses to convert integers of more than 4300 digits; JSON allows them. Only the payload's
    # text is stored, so a stand-in value is enough.
    return int(text) if len(text) <= 4000 else float(text)


_WRAPPER_LEVELS = 3
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_parse_int)


@dataclass(frozen=True, slots=True)
class Span:
    """A JSON value and where its text lies in the document (character offsets)."""

    value: Any
    start: int
    end: int


class JsonDocument:
    """A JSON text, decoded from UTF-8, walked member by member."""

    def __init__(self, raw: bytes, what: str) -> None:
        self.what = what
        self.raw = raw
        try:
            self.text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})", field="body") from None

    def bytes_of(self, span: Span) -> bytes:
        # The text came from strict UTF-8 decoding, so encoding a slice gives back the exact bytes.
        return self.text[span.start : span.end].encode("utf-8")

    def _skip(self, index: int) -> int:
        match = _WHITESPACE.match(self.text, index)
        assert match is not None
        return match.end()

    def _fail(self, message: str, index: int) -> InvalidInput:
        line = self.text.count("\n", 0, index) + 1
        column = index - (self.text.rfind("\n", 0, index) + 1) + 1
        return InvalidInput(f"{self.what} is not valid JSON ({message} at line {line} column {column})", field="body")

    def value_at(self, index: int) -> Span:
        try:
            value, end = _DECODER.raw_decode(self.text, index)
        except json.JSONDecodeError as exc:
            raise self._fail(exc.msg, exc.pos) from None
        except ValueError as exc:  # NaN / Infinity
            raise self._fail(str(exc), index) from None
        except RecursionError:
            raise InvalidInput(
                f"{self.what} nests too deeply; JSON may nest at most {MAX_JSON_DEPTH} levels", field="body"
            ) from None
        return Span(value, index, end)

    def root(self) -> int:
        """Where the single top-level value starts (after checking nothing but whitespace follows it)."""
        # A body holds payloads up to three levels down (a queued outcome message: its object, its events
        # array, an event); each payload is then held to the limit itself.
        depth = nests_deeper_than(self.raw, MAX_JSON_DEPTH + _WRAPPER_LEVELS)
        if depth is not None:
            raise InvalidInput(
                f"{self.what} nests {depth} levels deep; a payload may nest at most {MAX_JSON_DEPTH} levels "
                f"(documented limit)",
                field="body",
            )
        start = self._skip(0)
        if start == len(self.text):
            raise InvalidInput(f"{self.what} is empty", field="body")
        return start

    def expect_end(self, end: int) -> None:
        after = self._skip(end)
        if after != len(self.text):
            raise self._fail("extra data after the JSON value", after)

    def object_at(self, index: int, where: str) -> tuple[dict[str, Span], int]:
        """The members of the object starting at `index`, each with its span; a repeated name is refused."""
        text = self.text
        if not text.startswith("{", index):
            raise InvalidInput(f"{where} must be a JSON object", field=where)
        members: dict[str, Span] = {}
        index = self._skip(index + 1)
        if text.startswith("}", index):
            return members, index + 1
        while True:
            if not text.startswith('"', index):
                raise self._fail("expecting a member name in double quotes", index)
            name = self.value_at(index)
            index = self._skip(name.end)
            if not text.startswith(":", index):
                raise self._fail("expecting ':'", index)
            span = self.value_at(self._skip(index + 1))
            if name.value in members:
                raise InvalidInput(f"{where} has the member {name.value!r} twice", field=f"{where}.{name.value}")
            members[name.value] = span
            index = self._skip(span.end)
            if text.startswith(",", index):
                index = self._skip(index + 1)
            elif text.startswith("}", index):
                return members, index + 1
            else:
                raise self._fail("expecting ',' or '}'", index)

    def array_at(self, index: int, walk: Callable[[int, int], int]) -> int:
        """Walk the array at `index`: `walk(item_index, item_start)` returns each item's end; the array's end."""
        text = self.text
        index = self._skip(index + 1)
        if text.startswith("]", index):
            return index + 1
        position = 0
        while True:
            index = self._skip(walk(position, index))
            position += 1
            if text.startswith(",", index):
                index = self._skip(index + 1)
            elif text.startswith("]", index):
                return index + 1
            else:
                raise self._fail("expecting ',' or ']'", index)


def member_values(members: Mapping[str, Span], opaque: str | None = None) -> dict[str, Any]:
    """Member values for validation; the `opaque` member (a payload, kept as text) only needs to be there."""
    return {name: None if name == opaque else span.value for name, span in members.items()}
