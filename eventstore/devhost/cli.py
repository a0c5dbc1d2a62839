"""The host's command line: `python -m eventstore.devhost` and, wired into `eventstore`, `eventstore host`.

Cheap to import: the host itself (Azure SDKs, croniter) is imported when a command runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    from eventstore.devhost.host import serve

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
    local.settings.json), an embedded PostgreSQL in `.local/` whose DSN the functions get through the
    environment."""
    from eventstore.devhost.config import load_local_settings
    from eventstore.local.environment import local_settings

    root = Path(args.project_root or Path.cwd())
    for key, value in load_local_settings(
        Path(args.settings) if args.settings else root / "local.settings.json"
    ).items():
        if value:
            os.environ.setdefault(key, value)
    # Nothing configured: the functions' storage is Azurite on its standard ports, which `serve` starts.
    os.environ.setdefault("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    with local_settings() as settings, _local_event_grid(args.eventgrid_port):
        os.environ["EVENTSTORE_DATABASE_URL"] = settings.database_url
        return run(args)


@contextmanager
def _local_event_grid(port: int) -> Iterator[None]:
    """The feed's default local sink: an Event Grid stand-in, unless a topic is configured or the feed is off."""
    feed_on = os.environ.get("EVENTSTORE_FEED_ENABLED", "true").strip().lower() not in ("false", "0", "no", "off")
    if port < 0 or not feed_on or os.environ.get("EVENTSTORE_EVENTGRID_ENDPOINT"):
        yield
        return
    from eventstore.local.eventgrid import EventGridStandIn

    with EventGridStandIn(key="local-event-grid-key", port=port, log_arrivals=True) as grid:
        os.environ["EVENTSTORE_EVENTGRID_ENDPOINT"] = grid.endpoint
        os.environ["EVENTSTORE_EVENTGRID_KEY"] = grid.key
        os.environ.setdefault("EVENTSTORE_EVENTGRID_AUTH", "key")
        print(
            f"change feed: local Event Grid stand-in at {grid.endpoint}; watch it with "
            f"`.venv/bin/python -m eventstore feed watch --url http://127.0.0.1:{grid.port}`",
            flush=True,
        )
        yield
