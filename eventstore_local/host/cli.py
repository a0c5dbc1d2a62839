"""The host's command line: `python -m eventstore_local.host` and, wired into `eventstore`, `eventstore host`.

Cheap to import: the host itself (Azure SDKs, croniter) is imported when a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventstore.settings import Settings


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


def run(args: argparse.Namespace) -> int:
    """Serve the app in the foreground until Ctrl-C."""
    from eventstore_local.host.host import serve

    return serve(
        args.app,
        port=args.port,
        bind=args.bind,
        project_root=args.project_root,
        host_json=args.host_json,
        local_settings=args.settings,
        azurite=args.azurite,
    )


def run_with_database(args: argparse.Namespace) -> int:
    """`eventstore host`: as `run`, and when no EVENTSTORE_DATABASE_URL is configured (environment or
    local.settings.json), an embedded PostgreSQL in `.local/` whose DSN the functions get through their app
    settings (the process environment, which they read)."""
    from eventstore_local.host.config import load_local_settings
    from eventstore_local.settings import AppSettings
    from eventstore_local.standins.environment import local_settings

    root = Path(args.project_root or Path.cwd())
    AppSettings.set_defaults(
        load_local_settings(Path(args.settings) if args.settings else root / "local.settings.json")
    )
    # Nothing configured: the functions' storage is Azurite on its standard ports, which `serve` starts.
    AppSettings.set_defaults({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    with local_settings() as settings, _local_event_grid(args.eventgrid_port, settings):
        AppSettings.set({"EVENTSTORE_DATABASE_URL": settings.database_url})
        return run(args)


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
