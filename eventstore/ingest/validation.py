"""Checking what a client sent, with errors that name the member as the client sent it (`events[2].userId`),
never our own field names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from eventstore.errors import InvalidInput
from eventstore.models import NewEvent, invalid_input_from
from eventstore.tenancy import validate_tenant_id

_M = TypeVar("_M", bound=BaseModel)


def located(problem: InvalidInput, where: str | None) -> InvalidInput:
    """`problem` located under `where` (`events[2]`): its field and message name the item."""
    if where:
        problem.field = f"{where}.{problem.field}" if problem.field else where
        problem.args = (f"{where}: {problem.args[0]}" if problem.args else where,)
    return problem


def validated(model: type[_M], data: Mapping[str, Any], where: str | None) -> _M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise located(invalid_input_from(exc), where) from None


def new_event(fields: dict[str, Any], path: str | None, names: Mapping[str, str]) -> NewEvent:
    """The `NewEvent` of `fields`; a refusal names the member as sent, by `names` (our field → theirs)."""
    try:
        return NewEvent.model_validate(fields)
    except ValidationError as exc:
        problem = invalid_input_from(exc)
        error = exc.errors()[0]
        if error["loc"]:
            wire = names.get(str(error["loc"][0]), str(error["loc"][0]))
            problem.field = wire
            if not isinstance(error.get("ctx", {}).get("error"), InvalidInput):
                problem.args = (f"{wire}: {error['msg']}",)
        raise located(problem, path) from None


def names_tenant(named: str, tenant_id: str) -> bool:
    """Whether a tenant id a message names inside itself is `tenant_id` (canonical): GUIDs match in any
    case; a name that is no tenant id matches nothing."""
    if named == tenant_id:  # already canonical: no need to validate it
        return True
    try:
        return validate_tenant_id(named) == tenant_id
    except InvalidInput:
        return False
