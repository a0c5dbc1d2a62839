"""Typed settings, loaded once from the environment (prefix `EVENTSTORE_`) and passed in."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventstore.tenancy import validate_identifier_prefix


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EVENTSTORE_", env_nested_delimiter="__", frozen=True, populate_by_name=True
    )

    database_url: str = Field(
        default="",
        description="DSN of the default database, for an owner role that may create schemas and roles. "
        "Empty: the local tools start an embedded PostgreSQL.",
    )
    app_database_url: str = Field(
        default="",
        description="DSN the application writes and reads with. Empty: the owner DSN, switched to "
        "`app_role` with SET ROLE on every connection.",
    )
    dsns: dict[str, str] = Field(
        default_factory=dict,
        description="Further named databases a tenant can be placed in (EVENTSTORE_DSNS__<name>=<dsn>).",
    )
    app_role: str = Field(default="eventstore_app", description="Role with SELECT/INSERT only on events.")
    schema_prefix: str = Field(default="es_", description="Prefix of the per-tenant schema names.")
    inline_payload_limit: int = Field(
        default=256 * 1024,
        gt=0,
        description="Largest payload kept in the row, in bytes; larger ones go to Blob storage when it is "
        "configured, and are refused otherwise.",
    )
    max_payload_size: int = Field(default=64 * 1024 * 1024, gt=0, description="Largest payload accepted at all.")
    blob_connection_string: str = Field(
        default="",
        validation_alias=AliasChoices("EVENTSTORE_BLOB_CONNECTION_STRING", "AzureWebJobsStorage"),
        description="Blob storage for large payloads; defaults to the Functions storage account.",
    )
    partitions_ahead: int = Field(
        default=3, ge=0, le=36, description="Monthly partitions kept ready after the current month."
    )
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    max_batch_size: int = Field(default=1000, ge=1, le=10000, description="Most events in one append.")

    @field_validator("app_role")
    @classmethod
    def _role_is_simple(cls, value: str) -> str:
        return validate_identifier_prefix(value, "EVENTSTORE_APP_ROLE")

    @field_validator("schema_prefix")
    @classmethod
    def _prefix_is_simple(cls, value: str) -> str:
        return validate_identifier_prefix(value, "EVENTSTORE_SCHEMA_PREFIX")

    def dsn(self, name: str) -> str:
        """The DSN registered under `name`; `default` is `database_url`."""
        if name == "default":
            return self.database_url
        try:
            return self.dsns[name]
        except KeyError:
            raise KeyError(f"no DSN named {name!r}: set EVENTSTORE_DSNS__{name}") from None
