"""The host's command line: `python -m eventstore_local.host` and, wired into `eventstore`, `eventstore host`.

Cheap to import: the host itself (Azure SDKs, croniter) is imported when a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventstore.settings import Settings
    from eventstore_local.host.host import DevHost

Companion = Callable[["DevHost"], AbstractContextManager[object]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The host's options."""
    parser.add_argument("--port", type=int, default=7071, help="HTTP port (default 7071; 0 picks a free one)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument(
        "--project-root",
        default=None,
        help="where the app module, host.json and local.settings.json are (default: the working directory)",
    )
    parser.add_argument("--host-json", default=None, help="host.json to use (default: <project-root>/host.json)")
    parser.add_argument("--settings", default=None, help="local.settings.json to load (default: in the project root)")
    azurite = parser.add_mutually_exclusive_group()
    azurite.add_argument(
        "--azurite",
        dest="azurite",
        action="store_true",
        default=None,
        help="always start Azurite (default: when a storage setting is UseDevelopmentStorage=true)",
    )
    azurite.add_argument("--no-azurite", dest="azurite", action="store_false", help="never start Azurite")
    parser.add_argument(
        "--eventgrid-port",
        type=int,
        default=7072,
        help="`eventstore host` only: port of the local Event Grid stand-in it starts as the change feed's sink "
        "when EVENTSTORE_EVENTGRID_ENDPOINT is not set (default 7072; 0 picks a free one; -1: none)",
    )
    parser.add_argument(
        "--alerts-port",
        type=int,
        default=7075,
        help="`eventstore host` only: first of the four ports of the local alert receivers (PagerDuty, Slack, SMTP "
        "and its listing) for the channels not configured (default 7075; 0: free ones; -1: none)",
    )
    parser.add_argument(
        "--appinsights",
        type=int,
        nargs="?",
        const=7079,
        default=None,
        metavar="PORT",
        help="`eventstore host` only: start a local Application Insights ingestion endpoint (at PORT, default 7079; "
        "0: a free one) and send the app's metrics there (APPLICATIONINSIGHTS_CONNECTION_STRING); off by default",
    )
    parser.add_argument(
        "--no-engine",
        dest="engine",
        action="store_false",
        default=True,
        help="`eventstore host` only: do not start the sample engine (deal.won messages from the engine-messages "
        "queue, traced through the API) and its local CRM and email destinations",
    )
    parser.add_argument(
        "--crm-port", type=int, default=7073, help="the sample engine's CRM destination (default 7073; 0: free)"
    )
    parser.add_argument(
        "--email-port", type=int, default=7074, help="the sample engine's email destination (default 7074; 0: free)"
    )
    parser.add_argument(
        "--engine-queue", default="engine-messages", help="the sample engine's queue (default %(default)s)"
    )


def run(args: argparse.Namespace, companions: Sequence[Companion] = ()) -> int:
    """Serve the app in the foreground until Ctrl-C (with `companions` beside it)."""
    from eventstore_local.host.host import serve

    return serve(
        args.app,
        port=args.port,
        bind=args.bind,
        project_root=args.project_root,
        host_json=args.host_json,
        local_settings=args.settings,
        azurite=args.azurite,
        companions=companions,
    )


def run_with_database(args: argparse.Namespace) -> int:
    """`eventstore host`: as `run`, and when no EVENTSTORE_DATABASE_URL is configured (environment or
    local.settings.json), an embedded PostgreSQL in `.local/` whose DSN the functions get through their app
    settings (the process environment, which they read)."""
    from eventstore_local.host.config import load_local_settings
    from eventstore_local.settings import AppSettings
    from eventstore_local.standins.environment import local_archive_key, local_settings

    root = Path(args.project_root or Path.cwd())
    AppSettings.set_defaults(
        load_local_settings(Path(args.settings) if args.settings else root / "local.settings.json")
    )
    # Nothing configured: the functions' storage is Azurite on its standard ports, which `serve` starts.
    AppSettings.set_defaults({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    # The operator console is open on this machine (127.0.0.1); in Azure, Entra ID sign-in stands in front.
    AppSettings.set_defaults({"EVENTSTORE_CONSOLE_ACCESS": "open"})
    router = replay_router_defaults(AppSettings.current(), engine=args.engine, queue=args.engine_queue)
    AppSettings.set(router)
    AppSettings.set(local_archive_key())
    with (
        local_settings() as settings,
        _local_event_grid(args.eventgrid_port, settings),
        _local_alert_receivers(args.alerts_port, settings),
        _local_appinsights(args.appinsights),
    ):
        AppSettings.set({"EVENTSTORE_DATABASE_URL": settings.database_url})
        companions = [_sample_engine(args.crm_port, args.email_port, args.engine_queue)] if args.engine else []
        where = f"http://127.0.0.1:{args.port}/api/console" if args.port else "/api/console on the address above"
        access = AppSettings.current().get("EVENTSTORE_CONSOLE_ACCESS")
        console = _say(f"console: {where} ({access} access: no sign-in is asked on this machine)")
        return run(args, [*companions, _say(replay_router_line(settings, defaulted=bool(router))), console])


REPLAY_ROUTER = "EVENTSTORE_REPLAY_ROUTER"


def replay_router_defaults(environ: Mapping[str, str], *, engine: bool, queue: str) -> dict[str, str]:
    """The replay router `eventstore host` adds when none is configured: the sample engine's queue, on the
    storage the engine reads (AzureWebJobsStorage), so that a replay runs end to end. Nothing without the engine
    (a replay must never wait on a queue nobody reads), and nothing when any part of the deployment-wide router
    is set (the whole JSON, or any `__` member)."""
    configured = any(
        value and (name.upper() == REPLAY_ROUTER or name.upper().startswith(f"{REPLAY_ROUTER}__"))
        for name, value in environ.items()
    )
    if configured or not engine:
        return {}
    router = {f"{REPLAY_ROUTER}__QUEUE": queue}
    # Named, not left to the router's default (the Blob storage setting, which may be another account).
    storage = environ.get("AzureWebJobsStorage")
    return {**router, f"{REPLAY_ROUTER}__CONNECTION": storage} if storage else router


def replay_router_line(settings: Settings, *, defaulted: bool) -> str:
    """Where replays go, for the banner."""
    router = settings.replay_router
    own = f"; {len(settings.replay_routers)} tenant(s) with a router of their own" if settings.replay_routers else ""
    if router is None:
        return (
            f"replays: no router (EVENTSTORE_REPLAY_ROUTER__QUEUE or __URL), so replay requests answer 409 "
            f"router-not-configured{own}"
        )
    if defaulted:
        # The router never creates a queue; the engine creates its own as it starts. Until it exists (the
        # engine did not start) replays are held and retried, never lost.
        return (
            f"replays: to the sample engine's queue {router.queue} (EVENTSTORE_REPLAY_ROUTER__QUEUE), so a replay "
            f"runs end to end: `.venv/bin/eventstore replay message <tenant> <eventId> --reason ...`{own}"
        )
    return f"replays: to {router.describe()}{own}"


def _say(line: str) -> Companion:
    """A line printed with the banner, after the companions started before it."""

    @contextmanager
    def beside(host: DevHost) -> Iterator[object]:
        print(line, flush=True)
        yield None

    return beside


def _sample_engine(crm_port: int, email_port: int, queue: str) -> Companion:
    """The sample engine beside the host, on the host's API and queue storage. Should it not start (a port
    in use, no storage), the host runs without it."""

    @contextmanager
    def beside(host: DevHost) -> Iterator[object]:
        from azure.core.exceptions import AzureError

        from eventstore_local.engine import LocalEngine
        from eventstore_local.host.config import ConfigError, storage_connection_string

        try:
            storage = storage_connection_string(None, host.environ, host.development_storage)
            engine = LocalEngine(host.api_url, storage, crm_port=crm_port, email_port=email_port, queue=queue).start()
        except (OSError, ConfigError, AzureError) as exc:  # a port in use, no storage, storage down
            reason = str(exc).splitlines()[0]
            print(
                f"sample engine not started: {reason} (--no-engine; --crm-port/--email-port 0: free ports)", flush=True
            )
            yield None
            return
        try:
            print(engine.banner(), flush=True)
            yield engine
        finally:
            engine.stop()

    return beside


@contextmanager
def _local_alert_receivers(port: int, settings: Settings) -> Iterator[None]:
    """Real local receivers for each alert channel not configured: PagerDuty Events v2 at `port`, a Slack
    incoming webhook at `port + 1`, SMTP at `port + 2` (its listing at `port + 3`); -1: none."""
    if port < 0 or not settings.alerts_enabled:
        yield
        return
    from eventstore_local.settings import AppSettings
    from eventstore_local.standins.pagerduty import PagerDutyStandIn
    from eventstore_local.standins.slack import SlackWebhookStandIn
    from eventstore_local.standins.smtp import SmtpStandIn

    step = 0 if port == 0 else 1
    with (
        PagerDutyStandIn(port=port) as pagerduty,
        SlackWebhookStandIn(port=port + step) as slack,
        SmtpStandIn(port=port + 2 * step, listing_port=port + 3 * step) as smtp,
    ):
        lines = []
        if settings.pagerduty_routing_key is None:
            AppSettings.set(
                {
                    "EVENTSTORE_PAGERDUTY_ROUTING_KEY": pagerduty.routing_key,
                    "EVENTSTORE_PAGERDUTY_URL": pagerduty.base_url,
                }
            )
            lines.append(f"PagerDuty {pagerduty.base_url}")
        if settings.slack_webhook_url is None:
            AppSettings.set({"EVENTSTORE_SLACK_WEBHOOK_URL": slack.url})
            lines.append(f"Slack {slack.url}")
        if settings.smtp_host is None:
            AppSettings.set(
                {
                    "EVENTSTORE_SMTP_HOST": "127.0.0.1",
                    "EVENTSTORE_SMTP_PORT": str(smtp.port),
                    "EVENTSTORE_SMTP_STARTTLS": "false",
                }
            )
            AppSettings.set_defaults(
                {"EVENTSTORE_ALERT_EMAIL_FROM": "eventstore@localhost", "EVENTSTORE_ALERT_EMAIL_TO": "ops@localhost"}
            )
            lines.append(f"SMTP 127.0.0.1:{smtp.port}")
        if lines:
            print(
                f"alerts: local receivers ({', '.join(lines)}); watch them with `.venv/bin/eventstore alerts watch "
                f"--pagerduty {pagerduty.base_url} --slack http://127.0.0.1:{slack.port} "
                f"--smtp {(smtp.listing_url or '').removesuffix('/received')}`",
                flush=True,
            )
        yield


@contextmanager
def _local_appinsights(port: int | None) -> Iterator[None]:
    """With `--appinsights`: a local Application Insights ingestion endpoint the app's metrics go to, in place
    of any configured resource; a shorter export interval (5 s) unless one is set, so that a person sees them."""
    if port is None:
        yield
        return
    from eventstore_local.settings import AppSettings
    from eventstore_local.standins.appinsights import AppInsightsStandIn

    with AppInsightsStandIn(port=port) as insights:
        AppSettings.set(insights.environment())
        AppSettings.set_defaults({"OTEL_METRIC_EXPORT_INTERVAL": "5000"})
        print(
            f"metrics: local Application Insights stand-in at {insights.base_url} (APPLICATIONINSIGHTS_CONNECTION_"
            f"STRING); what it received: `curl {insights.base_url}/received`",
            flush=True,
        )
        yield


@contextmanager
def _local_event_grid(port: int, settings: Settings) -> Iterator[None]:
    """The feed's default local sink: an Event Grid stand-in, unless a topic is configured or the feed is off."""
    if port < 0 or not settings.feed_enabled or settings.eventgrid_endpoint:
        yield
        return
    from eventstore_local.settings import AppSettings
    from eventstore_local.standins.eventgrid import EventGridStandIn

    with EventGridStandIn(key="local-event-grid-key", port=port, log_arrivals=True) as grid:
        AppSettings.set({"EVENTSTORE_EVENTGRID_ENDPOINT": grid.endpoint, "EVENTSTORE_EVENTGRID_KEY": grid.key})
        AppSettings.set_defaults({"EVENTSTORE_EVENTGRID_AUTH": "key"})
        print(
            f"change feed: local Event Grid stand-in at {grid.endpoint}; watch it with "
            f"`.venv/bin/eventstore feed watch --url http://127.0.0.1:{grid.port}`",
            flush=True,
        )
        yield
