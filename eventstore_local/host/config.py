"""What the host reads besides the functions: host.json, app settings, storage connections."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eventstore_local.standins.azurite import connection_string as azurite_connection_string
from eventstore_local.standins.azurite import is_development_storage

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d+)(?::(\d+)(?:\.(\d+))?)?$")
_SETTING_REFERENCE = re.compile(r"%([^%]+)%")


class ConfigError(ValueError):
    """host.json, an app setting or a binding cannot be used."""


def parse_timespan(value: object, *, number_unit: float = 1.0, what: str = "timespan") -> float:
    """A .NET TimeSpan (`[d.]hh:mm[:ss[.fffffff]]`) in seconds; a plain number counts `number_unit` seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a TimeSpan such as '00:00:02', got {value!r}")
    if isinstance(value, int | float):
        return float(value) * number_unit
    if isinstance(value, str):
        match = _TIMESPAN.match(value.strip())
        if match:
            days, hours, minutes, seconds, fraction = match.groups()
            total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
            return total + (float(f"0.{fraction}") if fraction else 0.0)
    raise ConfigError(f"{what}: expected a TimeSpan such as '00:00:02', got {value!r}")


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`. Defaults are Azure's except `max_polling_interval` (Azure: 1 minute),
    kept short so that local runs react quickly."""

    batch_size: int = 16
    new_batch_threshold: int | None = None  # None: batch_size // 2, as Azure
    max_polling_interval: float = 2.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: Literal["base64", "none"] = "base64"

    @property
    def threshold(self) -> int:
        return self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json this host honours."""

    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    functions: tuple[str, ...] | None = None  # host.json "functions": only these are loaded
    function_timeout: float | None = None  # reported, not enforced

    @classmethod
    def load(cls, source: HostConfig | Path | str | Mapping[str, Any] | None) -> HostConfig:
        """From a host.json path, an already parsed mapping, or nothing (all defaults). A `HostConfig` is
        taken as is (e.g. `dataclasses.replace` of a loaded one, to shorten retries in tests)."""
        if source is None:
            return cls()
        if isinstance(source, HostConfig):
            return source
        if isinstance(source, Mapping):
            data: Any = source
            where = "host.json"
        else:
            path = Path(source)
            where = str(path)
            try:
                data = json.loads(path.read_text(encoding="utf-8-sig"))
            except FileNotFoundError as exc:
                raise ConfigError(f"{where} does not exist") from exc
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where} is not valid JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a JSON object")
        extensions = _section(data, "extensions", where)
        http = _section(extensions, "http", where)
        queues = _section(extensions, "queues", where)

        route_prefix = str(http.get("routePrefix", "api")).strip("/")
        options = QueueOptions(
            batch_size=_int(queues, "batchSize", 16, 1, 32, where),
            new_batch_threshold=(
                _int(queues, "newBatchThreshold", 0, 0, 10_000, where) if "newBatchThreshold" in queues else None
            ),
            # Azure host.json v1 gave maxPollingInterval in milliseconds; v2 uses TimeSpans.
            max_polling_interval=max(
                0.1,
                parse_timespan(
                    queues.get("maxPollingInterval", 2.0 * 1000), number_unit=0.001, what="queues.maxPollingInterval"
                ),
            ),
            visibility_timeout=parse_timespan(queues.get("visibilityTimeout", 0), what="queues.visibilityTimeout"),
            max_dequeue_count=_int(queues, "maxDequeueCount", 5, 1, 10_000, where),
            message_encoding=_encoding(queues.get("messageEncoding", "base64"), where),
        )
        functions = data.get("functions")
        if functions is not None and not (isinstance(functions, list) and all(isinstance(f, str) for f in functions)):
            raise ConfigError(f"{where}: 'functions' must be a list of function names")
        timeout = data.get("functionTimeout")
        return cls(
            route_prefix=route_prefix,
            queues=options,
            functions=tuple(functions) if functions is not None else None,
            function_timeout=parse_timespan(timeout, what="functionTimeout") if timeout is not None else None,
        )


def _section(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: '{key}' must be an object")
    return value


def _int(data: Mapping[str, Any], key: str, default: int, low: int, high: int, where: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}: queues.{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _encoding(value: object, where: str) -> Literal["base64", "none"]:
    text = str(value).lower()
    if text == "base64":
        return "base64"
    if text == "none":
        return "none"
    raise ConfigError(f"{where}: queues.messageEncoding must be 'base64' or 'none', got {value!r}")


def resolve_setting_references(value: str, environ: Mapping[str, str]) -> str:
    """`%Name%` in binding properties (queue names, schedules) is replaced by the app setting `Name`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"app setting {name!r} (referenced as %{name}%) is not set")
        return environ[name]

    return _SETTING_REFERENCE.sub(replace, value)


def storage_connection_string(
    setting: str | None, environ: Mapping[str, str], development_storage: str | None = None
) -> str:
    """The connection string a binding's `connection` names. As the Functions host: an empty name means
    `AzureWebJobsStorage`, and `Name` is also looked up as `AzureWebJobsName`. `UseDevelopmentStorage=true`
    becomes `development_storage` (a started Azurite's string) or Azurite's default ports."""
    name = setting or "AzureWebJobsStorage"
    value = environ.get(name) or environ.get(f"AzureWebJobs{name}")
    if not value:
        raise ConfigError(f"storage connection setting {name!r} is not set (for Azurite: UseDevelopmentStorage=true)")
    if is_development_storage(value):
        return development_storage or azurite_connection_string()
    return value


def uses_development_storage(setting: str | None, environ: Mapping[str, str]) -> bool:
    name = setting or "AzureWebJobsStorage"
    value = environ.get(name) or environ.get(f"AzureWebJobs{name}") or ""
    return is_development_storage(value)


def is_disabled(function_name: str, environ: Mapping[str, str]) -> bool:
    """The app setting `AzureWebJobs.<name>.Disabled` (true/1) disables a function, as in Azure; also spelt
    `AzureWebJobs__<name>__Disabled` where setting names cannot hold dots (Linux)."""
    for key in (f"AzureWebJobs.{function_name}.Disabled", f"AzureWebJobs__{function_name}__Disabled"):
        if environ.get(key, "").strip().lower() in {"true", "1"}:
            return True
    return False


def load_local_settings(path: Path | str) -> dict[str, str]:
    """The `Values` of a local.settings.json (empty when the file does not exist)."""
    file = Path(path)
    if not file.exists():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file} is not valid JSON: {exc}") from exc
    values = data.get("Values", {}) if isinstance(data, dict) else {}
    if not isinstance(values, dict):
        raise ConfigError(f"{file}: 'Values' must be an object")
    return {str(k): "" if v is None else str(v) for k, v in values.items()}
