"""The functions of an app, read from their own binding metadata, and how one is invoked.

The metadata is what the Python worker sends the Functions host when it indexes the app: each
function's raw bindings (`Function.get_raw_bindings()`, the function.json form). Invocation follows the
worker: the trigger's argument, `func.Out` objects for named output bindings, the return value for a
`$return` binding, `context` when the function asks for it; `async def` functions run on one event loop
shared by all async functions, others on the calling thread.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import azure.functions as func
from azure.functions import _abc as func_abc

T = TypeVar("T")

HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER = "httpTrigger", "queueTrigger", "timerTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER)
SUPPORTED_OUTPUTS = ("http", "queue")


@dataclass
class FunctionSpec:
    """One function: its name, the user's callable and its bindings as plain JSON dicts."""

    name: str
    user_function: Callable[..., Any]
    trigger: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    directory: str = ""

    @property
    def trigger_type(self) -> str:
        return str(self.trigger.get("type", ""))

    def unsupported(self) -> str | None:
        """Why this host cannot run the function, or None."""
        if self.trigger_type not in SUPPORTED_TRIGGERS:
            return f"trigger type {self.trigger_type!r} is not supported locally"
        if self.trigger_type == HTTP_TRIGGER and _reserved(str(self.trigger.get("route") or self.name)):
            # As the Functions host: /admin is its own management API, whatever the route prefix.
            return "the specified route conflicts with one or more built in routes (it starts with admin)"
        if self.inputs:
            return f"input bindings ({', '.join(b.get('type', '?') for b in self.inputs)}) are not supported locally"
        for binding in self.outputs:
            if binding.get("type") not in SUPPORTED_OUTPUTS:
                return f"output binding type {binding.get('type')!r} is not supported locally"
            if binding.get("type") == "http" and self.trigger_type != HTTP_TRIGGER:
                return "an http output binding needs an http trigger"
        return None


def _reserved(route: str) -> bool:
    first = route.strip("/").split("/", 1)[0].lower()
    return first.startswith("admin") or first == "runtime"


def describe(app: func.FunctionApp | Iterable[func.Function]) -> list[FunctionSpec]:
    """The app's functions. A `FunctionApp` is asked once (`get_functions()` may be called only once per app
    object); pass the list it returned to describe it again."""
    if isinstance(app, func.FunctionRegister):
        try:
            functions = app.get_functions()
        except ValueError as exc:
            if "unique" not in str(exc):
                raise
            raise ValueError(
                f"{exc} (get_functions() may be called only once per app object: "
                "pass the list it returned instead of the app)"
            ) from exc
    else:
        functions = list(app)
    specs = []
    for function in functions:
        bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
        trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), None)
        if trigger is None:
            raise ValueError(f"function {function.get_function_name()!r} has no trigger")
        user_function = function.get_user_function()
        try:
            directory = str(Path(inspect.getfile(user_function)).parent)
        except TypeError:
            directory = ""
        specs.append(
            FunctionSpec(
                name=str(function.get_function_name()),
                user_function=user_function,
                trigger=trigger,
                outputs=[b for b in bindings if b is not trigger and str(b.get("direction", "")).upper() == "OUT"],
                inputs=[b for b in bindings if b is not trigger and str(b.get("direction", "")).upper() != "OUT"],
                directory=directory,
            )
        )
    return specs


class Out(func.Out[T], Generic[T]):
    """A named output binding's value holder, as the worker passes it."""

    def __init__(self) -> None:
        self._value: T | None = None
        self.was_set = False

    def set(self, val: T) -> None:
        self._value = val
        self.was_set = True

    def get(self) -> T:
        return self._value  # type: ignore[return-value]  # None until set, as in the worker


class _TraceContext(func_abc.TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self._count, self._max = retry_count, max_retry_count

    @property
    def retry_count(self) -> int:
        return self._count

    @property
    def max_retry_count(self) -> int:
        return self._max

    @property
    def exception(self) -> func_abc.RpcException:
        raise AttributeError("no exception is recorded locally")


class Context(func.Context):
    """The invocation context passed to a function that has a `context` parameter."""

    _local = threading.local()

    def __init__(self, function_name: str, function_directory: str, retry_count: int = 0) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace = _TraceContext()
        self._retry = _RetryContext(retry_count, 0)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._local  # type: ignore[return-value]  # the worker's declared type is off; it is an instance

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return self._retry


@dataclass
class Outcome:
    """What an invocation produced: the return value and the named outputs that were set."""

    value: Any
    outputs: dict[str, Any]


class Invoker:
    """Calls user functions; owns the event loop `async def` functions run on."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="devhost-asyncio", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()

    def invoke(self, spec: FunctionSpec, trigger_value: Any, *, retry_count: int = 0) -> Outcome:
        """Run the function with its trigger value; exceptions propagate."""
        kwargs: dict[str, Any] = {str(spec.trigger["name"]): trigger_value}
        named_outputs = {str(b["name"]): Out[Any]() for b in spec.outputs if b.get("name") != "$return"}
        kwargs.update(named_outputs)
        if "context" in _parameters(spec.user_function) and "context" not in kwargs:
            kwargs["context"] = Context(spec.name, spec.directory, retry_count)
        result = spec.user_function(**kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run_coroutine_threadsafe(_awaited(result), self._loop).result()
        return Outcome(result, {name: out.get() for name, out in named_outputs.items() if out.was_set})


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _parameters(function: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(function).parameters
    except (TypeError, ValueError):
        return {}


def trigger_annotation(spec: FunctionSpec) -> Any:
    """The annotation of the trigger parameter (resolved when written as a string), or None."""
    name = str(spec.trigger["name"])
    try:
        parameter = inspect.signature(spec.user_function, eval_str=True).parameters.get(name)
    except (TypeError, ValueError, NameError, SyntaxError):
        parameter = _parameters(spec.user_function).get(name)
    if parameter is None or parameter.annotation is inspect.Parameter.empty:
        return None
    return parameter.annotation
