"""What the local tools read from the process environment, in one place.

The product's options are `eventstore.settings.Settings`; `LocalSettings` holds the few that only the local
tools use. `AppSettings` is the function app's settings as Azure hands them over: environment variables,
which the served functions read themselves (through `Settings`) and the host reads to resolve bindings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalSettings(BaseSettings):
    """Options of the local tools themselves (prefix `EVENTSTORE_`, like the product's)."""

    model_config = SettingsConfigDict(env_prefix="EVENTSTORE_", frozen=True, extra="ignore")

    local_dir: Path | None = Field(
        default=None,
        description="Where local runs keep their state (embedded PostgreSQL, Azurite). None: `.local` in "
        "the working directory (the project root, for the host).",
    )
    xdg_runtime_dir: str | None = Field(
        default=None,
        validation_alias="XDG_RUNTIME_DIR",
        description="The user's runtime directory; platformdirs (used by pgserver) warns when it is unset.",
    )


class AppSettings:
    """The function app's settings: the process environment, as in Azure. The local host adds the values of
    local.settings.json (and what it starts: a database, an Event Grid stand-in) before the functions load,
    since they read their settings from the environment of this very process."""

    @staticmethod
    def current() -> dict[str, str]:
        """A copy of the app settings as they are now."""
        return dict(os.environ)

    @staticmethod
    def set_defaults(values: Mapping[str, str]) -> None:
        """Adds each value whose name is not set yet; an empty value means "not set" and is skipped."""
        for key, value in values.items():
            if value:
                os.environ.setdefault(key, value)

    @staticmethod
    def set(values: Mapping[str, str]) -> None:
        """Sets (or replaces) each value."""
        os.environ.update(values)
