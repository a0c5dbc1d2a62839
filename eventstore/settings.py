"""Typed settings, loaded once from the environment (prefix `EVENTSTORE_`) and passed in."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventstore.tenancy import validate_identifier_prefix

_SINK_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_FEED_SCHEDULE = "*/5 * * * * *"
_FEED_SCHEDULE_TEXT = "NCRONTAB (6 fields) of the publisher's timer: the safety net."
_VIEWS_SCHEDULE = "*/5 * * * * *"
_REPLAY_SCHEDULE = "*/5 * * * * *"
_REPLAY_SCHEDULE_TEXT = "NCRONTAB (6 fields) of the replay timer, which queues the due messages of replay jobs."
_VIEWS_SCHEDULE_TEXT = "NCRONTAB (6 fields) of the views' timer: the safety net under the nudge after appends."


class WebhookSettings(BaseModel):
    """One statically registered CloudEvents webhook: `EVENTSTORE_WEBHOOKS__<name>__URL`, `__SECRET`..."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(pattern=r"^https?://", description="Where batches of slim CloudEvents are POSTed.")
    secret: SecretStr = Field(
        description="Checked when the sink is built (a bad one disables that webhook only, logged). "
        "HMAC-SHA256 key for the `webhook-signature` header (Standard Webhooks); a `whsec_` prefix "
        "means the rest is base64.",
    )
    enabled: bool = True
    handshake: bool = Field(
        default=True, description="Ask the subscriber's consent first (CloudEvents webhook validation, OPTIONS)."
    )


class RouterSettings(BaseModel):
    """Where replays of a tenant's messages go (docs/replay.md): the engine's inbound Azure Storage queue
    (`queue`, on `connection` or else AzureWebJobsStorage), or an HTTP endpoint (`url`) that gets the
    secret in a header. `EVENTSTORE_REPLAY_ROUTER__QUEUE=engine-messages`, or `...__URL=` and `...__SECRET=`;
    per tenant `EVENTSTORE_REPLAY_ROUTERS__<tenant id>__...`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", description="Storage queue name."
    )
    connection: SecretStr | None = Field(
        default=None,
        description="Storage connection string of `queue`, or its account's queue URL (https://...) reached with "
        "the app's managed identity (default: the app's own queue account).",
    )
    url: str | None = Field(default=None, pattern=r"^https?://", description="HTTP endpoint replays are POSTed to.")
    secret: SecretStr | None = Field(default=None, description="Sent to `url` in `secret_header`; required with url.")
    secret_header: str = Field(default="X-Router-Secret", pattern=r"^[A-Za-z0-9-]{1,64}$")
    timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds before a request to `url` fails.")

    @model_validator(mode="before")
    @classmethod
    def _without_empty_members(cls, data: object) -> object:
        # `func start` exports every key of local.settings.json, empty ones too: an empty member is unset.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data

    @model_validator(mode="after")
    def _one_target(self) -> RouterSettings:
        if self.queue is not None and "--" in self.queue:
            raise ValueError(f"queue name {self.queue!r} must not hold two hyphens in a row")
        if (self.queue is None) == (self.url is None):
            raise ValueError("a replay router names exactly one of queue or url")
        if self.url is not None and not (self.secret and self.secret.get_secret_value()):
            raise ValueError("a replay router with a url needs its secret")
        return self

    def describe(self) -> str:
        """Where it sends, without secrets: recorded in the audit stream."""
        return f"queue:{self.queue}" if self.queue is not None else f"http:{self.url}"


class ReplaySchedule(BaseSettings):
    """Read alone at import, for the replay timer's decorator (see FeedSchedule)."""

    model_config = SettingsConfigDict(env_prefix="EVENTSTORE_", env_ignore_empty=True, frozen=True)

    replay_schedule: str = Field(default=_REPLAY_SCHEDULE, description=_REPLAY_SCHEDULE_TEXT)


_ALERTS_SCHEDULE = "0 */1 * * * *"
_ALERTS_SCHEDULE_TEXT = (
    "NCRONTAB (six fields, seconds first) of the timer that evaluates the alert rules and sends what they "
    "queued; read when the functions are indexed (a change needs a restart)."
)


class AlertsSchedule(BaseSettings):
    """Read alone at import, for the alert timer's decorator (see FeedSchedule)."""

    model_config = SettingsConfigDict(env_prefix="EVENTSTORE_", env_ignore_empty=True, frozen=True)

    alerts_schedule: str = Field(default=_ALERTS_SCHEDULE, description=_ALERTS_SCHEDULE_TEXT)


_WEEKLY_SCHEDULE = "0 0 * * * *"
_WEEKLY_SCHEDULE_TEXT = (
    "NCRONTAB of the timer that sends the last whole week's summary email once (hourly: the first run of a "
    "week sends it, so a Monday when the app was down or the send failed is made up an hour later)."
)


class WeeklySchedule(BaseSettings):
    """Read alone at import, for the weekly timer's decorator (see FeedSchedule)."""

    model_config = SettingsConfigDict(env_prefix="EVENTSTORE_", env_ignore_empty=True, frozen=True)

    weekly_schedule: str = Field(default=_WEEKLY_SCHEDULE, description=_WEEKLY_SCHEDULE_TEXT)


class TelemetrySettings(BaseSettings):
    """The two app settings that decide whether metrics are exported, and who configures the exporter."""

    model_config = SettingsConfigDict(env_ignore_empty=True, frozen=True, extra="ignore")

    connection_string: SecretStr | None = Field(
        default=None,
        validation_alias="APPLICATIONINSIGHTS_CONNECTION_STRING",
        description="The Application Insights resource's connection string; unset: nothing is exported.",
    )
    worker_configures: bool = Field(
        default=False,
        validation_alias="PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        description="The Functions Python worker configures the Azure Monitor distro itself: use its provider.",
    )


_RETENTION_SCHEDULE = "0 30 2 * * *"
_RETENTION_SCHEDULE_TEXT = (
    "NCRONTAB of the retention timer that moves payloads older than EVENTSTORE_RETENTION_DAYS to cold Blob "
    "storage (nightly at 02:30 UTC by default)."
)


class RetentionSchedule(BaseSettings):
    """Read alone at import, for the retention timer's decorator (see FeedSchedule)."""

    model_config = SettingsConfigDict(env_prefix="EVENTSTORE_", env_ignore_empty=True, frozen=True)

    retention_schedule: str = Field(default=_RETENTION_SCHEDULE, description=_RETENTION_SCHEDULE_TEXT)


class FeedSchedule(BaseSettings):
    """`Settings.feed_schedule` alone: the host reads a timer's schedule when it indexes the functions,
    before anything else is read, and the rest of the settings must not have to load for that."""

    model_config = SettingsConfigDict(env_prefix="EVENTSTORE_", env_ignore_empty=True, frozen=True)

    feed_schedule: str = Field(default=_FEED_SCHEDULE, description=_FEED_SCHEDULE_TEXT)


class ViewsSchedule(BaseSettings):
    """`Settings.views_schedule` alone, read when the functions are indexed (as `FeedSchedule`)."""

    model_config = SettingsConfigDict(env_prefix="EVENTSTORE_", env_ignore_empty=True, frozen=True)

    views_schedule: str = Field(default=_VIEWS_SCHEDULE, description=_VIEWS_SCHEDULE_TEXT)


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
    app_dsns: dict[str, str] = Field(
        default_factory=dict,
        description="The application's DSN for each further named database (EVENTSTORE_APP_DSNS__<name>=<dsn>), "
        "as `app_database_url` is for the default one. Unset: that database's owner DSN with SET ROLE.",
    )
    direct_database_url: str = Field(
        default="",
        description="The application's DSN of the default database *not* through a transaction-pooling "
        "PgBouncer (Azure: port 5432 where `app_database_url` uses 6432). Setting it says `app_database_url` "
        "goes through such a pooler: requests use that, without server-side prepared statements, and the "
        "readers (feed, views, retention) and the maintenance path hold their sessions here.",
    )
    direct_dsns: dict[str, str] = Field(
        default_factory=dict,
        description="`direct_database_url` of each further named database (EVENTSTORE_DIRECT_DSNS__<name>=<dsn>).",
    )
    database_auth: Literal["password", "entra"] = Field(
        default="password",
        description="How the application's connections authenticate: password (whatever the DSN says) or entra "
        "(a Microsoft Entra token of the app's managed identity as the password of each new connection; "
        "the DSN's user is the identity's database login). The owner DSN, used only by migrations and "
        "onboarding, always authenticates as it says.",
    )
    app_role: str = Field(default="eventstore_app", description="Role with SELECT/INSERT only on events.")
    console_access: Literal["off", "open", "entra"] = Field(
        default="off",
        description="Who may open the operator console (/api/console/): off (nobody), open (anyone who reaches "
        "the app: `eventstore host` on 127.0.0.1 sets it), entra (only requests App Service Authentication "
        "signed in with Microsoft Entra ID: it sets X-MS-CLIENT-PRINCIPAL-NAME, which it strips from any other "
        "request).",
    )
    retention_enabled: bool = Field(
        default=True, description="Move old payloads to cold storage on the retention timer (needs an archive key)."
    )
    retention_days: int = Field(
        default=90, ge=1, le=36_500, description="Payloads of events older than this many days move to cold storage."
    )
    retention_schedule: str = Field(default=_RETENTION_SCHEDULE, description=_RETENTION_SCHEDULE_TEXT)
    retention_tier: Literal["Cool", "Cold", "Archive"] = Field(
        default="Cool",
        description="The access tier of the cold segments: Cool and Cold read at once; Archive is cheapest and "
        "offline until a read rehydrates its segment (hours).",
    )
    retention_segment_events: int = Field(
        default=1000, ge=1, le=100_000, description="Events per cold segment blob (one archive batch)."
    )
    retention_segment_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="At most this many payload bytes per cold segment (large payloads moved from the hot "
        "container fill a segment before it reaches its event count); a single larger payload gets one of its own.",
    )
    retention_orphan_grace_seconds: int = Field(
        default=3600,
        ge=0,
        description="A cold segment no PayloadsArchived record names (an archiver killed between writing it and "
        "committing) is deleted by the next run once it is this old.",
    )
    retention_compact: bool = Field(
        default=True,
        description="Rewrite a month's partition (VACUUM FULL) once all its payloads moved to cold storage, so "
        "the database gives the space back; its reads wait while it is rewritten. Needs the owner DSN.",
    )
    archive_previous_keys: SecretStr | None = Field(
        default=None,
        description="Archive keys replaced by EVENTSTORE_ARCHIVE_KEY, comma-separated base64: they still open what "
        "they sealed, and each retention run re-wraps those data keys under the current key (a row update, no "
        "segment rewritten). Remove one once `eventstore retention status` shows no data key under it.",
    )
    archive_key: SecretStr | None = Field(
        default=None,
        description="The key (32 bytes, base64) that wraps each archived payload's own data key; a Key Vault "
        "reference in Azure. Without it (and without EVENTSTORE_ARCHIVE_KEY_FILE) nothing is archived.",
    )
    archive_key_file: str | None = Field(
        default=None, description="Or a file holding that key (base64), for local runs."
    )
    maintenance_role: str = Field(
        default="eventstore_maint",
        description="The maintenance path's role: the only one the append-only triggers let change stored events "
        "(archiving, erasure); the application role is never a member of it. Fixed once tenants are onboarded.",
    )
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
    blob_account_url: str = Field(
        default="",
        validation_alias=AliasChoices("EVENTSTORE_BLOB_ACCOUNT_URL", "AzureWebJobsStorage__blobServiceUri"),
        description="Blob endpoint reached with the app's managed identity (DefaultAzureCredential) instead of "
        "a connection string; wins over `blob_connection_string` when both are set.",
    )
    partitions_ahead: int = Field(
        default=3, ge=0, le=36, description="Monthly partitions kept ready after the current month."
    )
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    max_batch_size: int = Field(default=1000, ge=1, le=10000, description="Most events in one append.")
    dependency_timeout_seconds: float = Field(
        default=4.0,
        ge=1.0,
        le=120.0,
        description="Longest a request waits on PostgreSQL or Blob storage before it answers 503: a pooled "
        "connection (and the pool's first open), a connection attempt (libpq connect_timeout, at least 2 s), "
        "a Blob connection and each Blob socket read; docs/reliability.md derives every bound from it.",
    )
    retry_after_seconds: int = Field(
        default=5, ge=1, le=3600, description="The Retry-After of a 503 (a dependency is unavailable)."
    )
    continuation_key: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC-SHA256 key that signs continuation tokens (at least 16 bytes). Every instance of a "
        "deployment must share it. Empty: a random key per process (tokens then fail on another instance or "
        "after a restart, so set it in Azure).",
    )

    # The change feed (docs/feed.md).
    feed_enabled: bool = Field(default=True, description="Publish the change feed at all (per deployment).")
    feed_schedule: str = Field(default=_FEED_SCHEDULE, description=_FEED_SCHEDULE_TEXT)
    views_schedule: str = Field(default=_VIEWS_SCHEDULE, description=_VIEWS_SCHEDULE_TEXT)
    full_pass_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="The timers skip a tenant's reader (feed sink, view, alert rules, replay jobs) while its "
        "all-stream has not moved since the reader was twice found caught up; every this many seconds they run "
        "every reader of every tenant anyway (a backstop that costs a few statements per reader and tenant).",
    )
    feed_nudge: bool = Field(
        default=True, description="Publish right after an ingest append instead of waiting for the timer."
    )
    feed_type_prefix: str = Field(
        default="io.eventstore.workflow",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]*$",
        description="CloudEvents type prefix.",
    )
    feed_batch_events: int = Field(default=1000, ge=1, le=5000, description="Most events in one request.")
    feed_batch_bytes: int = Field(
        default=1_000_000, ge=4096, le=1_048_576, description="Largest request body (Event Grid refuses over 1 MB)."
    )
    feed_request_timeout: float = Field(default=10.0, gt=0, description="Seconds before a request counts as failed.")
    feed_retry_seconds: float = Field(
        default=30.0, ge=0, description="How long one run retries a failing sink (backoff) before holding it."
    )
    feed_run_seconds: float = Field(
        default=120.0, gt=0, description="Most seconds one timer run spends on a tenant's backlog."
    )
    feed_refusal_hold_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long a sink that refuses every event alike is held (its fault, presumably) before "
        "the refused events go to the dead letters after all and the feed moves on.",
    )
    feed_origin: str = Field(
        default="localhost",
        validation_alias=AliasChoices("EVENTSTORE_FEED_ORIGIN", "WEBSITE_HOSTNAME"),
        description="Who the webhook handshake says is sending (WebHook-Request-Origin); the app's host name.",
    )
    eventgrid_endpoint: str = Field(
        default="",
        description="Event Grid topic endpoint including /api/events. Empty: no Event Grid sink.",
    )
    eventgrid_auth: Literal["key", "entra"] = Field(
        default="key",
        description="`key`: EVENTSTORE_EVENTGRID_KEY; `entra`: DefaultAzureCredential (managed identity).",
    )
    eventgrid_key: SecretStr = Field(default=SecretStr(""), description="Topic access key (auth `key`).")
    eventgrid_client: Literal["pipeline", "sdk"] = Field(
        default="pipeline",
        description="`pipeline`: the batch's bytes through azure-core with the SDK's policies (fast); `sdk`: "
        "EventGridPublisherClient.send, which re-serialises every event (~4x slower to drain a backlog).",
    )
    eventgrid_enabled: bool = Field(default=True, description="Switch the Event Grid sink off without removing it.")
    webhooks: dict[str, WebhookSettings] = Field(
        default_factory=dict, description="CloudEvents webhooks by name (EVENTSTORE_WEBHOOKS__<name>__URL=...)."
    )

    replay_router: RouterSettings | None = Field(
        default=None, description="Where replays go for tenants without a router of their own (none: refused)."
    )
    replay_routers: dict[str, RouterSettings] = Field(
        default_factory=dict,
        description="Replay routers by tenant id (EVENTSTORE_REPLAY_ROUTERS__<tenant>__QUEUE=...).",
    )
    queue_connection_string: str = Field(
        default="",
        validation_alias=AliasChoices("EVENTSTORE_QUEUE_CONNECTION_STRING", "AzureWebJobsStorage"),
        description="Storage account of the app's own queues (workflow-replays); default AzureWebJobsStorage.",
    )
    queue_account_url: str = Field(
        default="",
        validation_alias=AliasChoices("EVENTSTORE_QUEUE_ACCOUNT_URL", "AzureWebJobsStorage__queueServiceUri"),
        description="Queue endpoint of the app's own queues reached with the app's managed identity "
        "(DefaultAzureCredential) instead of a connection string; wins over `queue_connection_string`.",
    )
    replay_schedule: str = Field(default=_REPLAY_SCHEDULE, description=_REPLAY_SCHEDULE_TEXT)
    replay_rate: float = Field(
        default=20.0, gt=0, le=1000, description="Messages per second a bulk replay job forwards to its router."
    )
    replay_confirm_over: int = Field(
        default=100, ge=0, description="A bulk replay matching more messages than this needs `confirm: true`."
    )

    # -- alerts (docs/alerts.md) -------------------------------------------------------------------------
    alerts_enabled: bool = Field(default=True, description="Evaluate the alert rules and send notifications.")
    alerts_schedule: str = Field(default=_ALERTS_SCHEDULE, description=_ALERTS_SCHEDULE_TEXT)
    weekly_schedule: str = Field(default=_WEEKLY_SCHEDULE, description=_WEEKLY_SCHEDULE_TEXT)
    weekly_hour: int = Field(
        default=8, ge=0, le=23, description="The weekly summary goes out from this hour (UTC) of Monday on."
    )
    alert_failure_rate: float = Field(
        default=0.05, gt=0, lt=1, description="A workflow's failure rate over the window above this pages."
    )
    alert_min_executions: int = Field(
        default=20, ge=1, description="Executions the window must hold before its failure rate can page."
    )
    alert_window_minutes: int = Field(default=60, ge=1, le=1440, description="The sliding window of the rule.")
    alert_severity: str = Field(
        default="error", pattern="^(critical|error|warning|info)$", description="PagerDuty severity of a page."
    )
    public_url: str = Field(
        default="http://127.0.0.1:7071",
        description="Where people reach this app (links in alerts, Slack posts and the weekly email).",
    )
    pagerduty_routing_key: SecretStr | None = Field(
        default=None, description="PagerDuty Events API v2 integration key; unset: no pages."
    )
    pagerduty_url: str | None = Field(
        default=None, description="The Events API's base URL (default PagerDuty's; locally the stand-in's)."
    )
    alert_faulted_pagerduty: bool = Field(
        default=False, description="Page for each instance that enters the faulted state too (Slack always)."
    )
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack incoming webhook (a secret); unset: no posts."
    )
    slack_summary_over: int = Field(
        default=10, ge=1, description="More notices than this due at once go as one summary post."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server of the weekly email; unset: no email.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection with STARTTLS.")
    acs_email_endpoint: str | None = Field(
        default=None, description="Azure Communication Services endpoint of the weekly email (managed identity)."
    )
    acs_email_connection_string: SecretStr | None = Field(
        default=None, description="ACS connection string (endpoint and access key); with either, ACS, not SMTP."
    )
    alert_email_from: str | None = Field(default=None, description="Sender of the weekly email.")
    alert_email_to: str | None = Field(
        default=None, description="The operations owner: recipients of the weekly email, comma-separated."
    )

    @field_validator("replay_router", mode="before")
    @classmethod
    def _unset_router(cls, value: object) -> object:
        """A router whose members are all empty is no router (empty app settings, as `func start` exports)."""
        if isinstance(value, dict) and all(v in ("", None) for v in value.values()):
            return None
        return value

    @field_validator("webhooks")
    @classmethod
    def _webhook_names(cls, value: dict[str, WebhookSettings]) -> dict[str, WebhookSettings]:
        for name in value:
            if not re.match(_SINK_NAME, name):
                raise ValueError(f"webhook name {name!r} must match {_SINK_NAME}")
        return value

    @field_validator("continuation_key")
    @classmethod
    def _key_is_long_enough(cls, value: SecretStr) -> SecretStr:
        # Refused when the settings load (the app does not start), not on every list request later.
        if value.get_secret_value() and len(value.get_secret_value().encode("utf-8")) < 16:
            raise ValueError("EVENTSTORE_CONTINUATION_KEY must be at least 16 bytes (or empty: a key per process)")
        return value

    @field_validator("app_role", "maintenance_role")
    @classmethod
    def _role_is_simple(cls, value: str, info: ValidationInfo) -> str:
        return validate_identifier_prefix(value, f"EVENTSTORE_{(info.field_name or '').upper()}")

    @model_validator(mode="after")
    def _roles_differ(self) -> Settings:
        if self.app_role == self.maintenance_role:
            raise ValueError("EVENTSTORE_MAINTENANCE_ROLE must differ from EVENTSTORE_APP_ROLE")
        return self

    @field_validator("schema_prefix")
    @classmethod
    def _prefix_is_simple(cls, value: str) -> str:
        return validate_identifier_prefix(value, "EVENTSTORE_SCHEMA_PREFIX")

    def app_dsn(self, name: str) -> str:
        """The application's own DSN of database `name`, or "" when it logs in with the owner's."""
        return self.app_database_url if name == "default" else self.app_dsns.get(name, "")

    def direct_dsn(self, name: str) -> str:
        """The application's DSN of database `name` that bypasses a transaction pooler, or "" (none is used)."""
        return self.direct_database_url if name == "default" else self.direct_dsns.get(name, "")

    def dsn(self, name: str) -> str:
        """The DSN registered under `name`; `default` is `database_url`."""
        if name == "default":
            return self.database_url
        try:
            return self.dsns[name]
        except KeyError:
            raise KeyError(f"no DSN named {name!r}: set EVENTSTORE_DSNS__{name}") from None
