"""The host's command line: `python -m eventstore.devhost` and, wired into `eventstore`, `eventstore host`.

Cheap to import: the host itself (Azure SDKs, croniter) is imported when a command runs.
"""

from __future__ import annotations

import argparse
import os
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
    with local_settings() as settings:
        os.environ["EVENTSTORE_DATABASE_URL"] = settings.database_url
        return run(args)
