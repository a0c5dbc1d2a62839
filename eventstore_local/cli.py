"""`eventstore`: the one command-line entry point for people."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from eventstore.errors import EventStoreError
from eventstore.store import EventStore
from eventstore.tenancy import TenantPlacement
from eventstore_local.standins.environment import local_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventstore",
        description="Audit log, history and change feed for workflow engines. The database is "
        "EVENTSTORE_DATABASE_URL, or an embedded PostgreSQL in .local/ when it is not set.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    tenant = commands.add_parser("tenant", help="onboard and inspect tenants").add_subparsers(
        dest="action", required=True
    )
    onboard = tenant.add_parser("onboard", help="create or migrate a tenant's schema (idempotent)")
    onboard.add_argument("tenant_id")
    onboard.add_argument("--dsn-name", help="named database (EVENTSTORE_DSNS__<name>); default: the main one")
    onboard.add_argument("--schema", help="schema name; default: derived from the tenant id")
    onboard.add_argument("--container", help="Blob container name; default: Marain's SHA-1 rule")
    show = tenant.add_parser("show", help="where a tenant's data lives")
    show.add_argument("tenant_id")
    tenant.add_parser("list", help="every onboarded tenant")

    commands.add_parser("migrate", help="bring the registry and every tenant's schema to the latest version")
    partitions = commands.add_parser("partitions", help="create monthly partitions ahead of time")
    partitions.add_argument("--months-ahead", type=int, default=None)
    commands.add_parser("demo", help="record a Marain expense-claim walk and print history and state")
    payloads = commands.add_parser(
        "payloads", help="look for every Blob-backed payload of a tenant; list the missing ones in its health"
    ).add_subparsers(dest="action", required=True)
    check = payloads.add_parser("check", help="one HEAD per payload: record the missing, clear the restored")
    check.add_argument("tenant_id")
    walk = commands.add_parser("walk", help="send the expense-claim walk to a running host over HTTP")
    walk.add_argument("--url", default="http://127.0.0.1:7071/api", help="the host's API (default %(default)s)")
    from eventstore_local.feed_commands import add_arguments as add_feed_arguments

    add_feed_arguments(
        commands.add_parser("feed", help="the change feed: publish now, a tenant's feed health, watch arrivals")
    )
    from eventstore_local.host.cli import add_arguments as add_host_arguments

    add_host_arguments(
        commands.add_parser(
            "host",
            help="serve the Functions app locally: HTTP on 127.0.0.1:7071/api, queues via Azurite, timers; "
            "embedded PostgreSQL and Azurite when nothing is configured",
        )
    )
    return parser


def _run(args: argparse.Namespace) -> None:
    with local_settings() as settings, EventStore(settings) as store:
        if args.command == "tenant" and args.action == "onboard":
            placement = store.onboard_tenant(
                args.tenant_id, dsn_name=args.dsn_name, schema=args.schema, container=args.container
            )
            print(
                f"onboarded {placement.tenant_id}: dsn {placement.dsn_name}, schema {placement.schema_name}, "
                f"container {placement.container_name}"
            )
        elif args.command == "tenant" and args.action == "show":
            p = store.tenant(args.tenant_id).placement
            print(f"{p.tenant_id}: dsn {p.dsn_name}, schema {p.schema_name}, container {p.container_name}")
            print("partitions: " + ", ".join(store.partitions(p.tenant_id)))
        elif args.command == "tenant" and args.action == "list":
            for p in store.tenants():
                print(f"{p.tenant_id}  {p.dsn_name}  {p.schema_name}")
        elif args.command == "migrate":

            def progress(index: int, total: int, placement: TenantPlacement, version: int) -> None:
                print(f"[{index}/{total}] {placement.tenant_id} at version {version}", flush=True)

            done = store.migrate(progress)
            print(f"control schema {store.control_schema} and {len(done)} tenant(s) migrated")
        elif args.command == "partitions":
            for tenant_id, names in store.ensure_partitions(args.months_ahead).items():
                print(f"{tenant_id}: {', '.join(names)}", flush=True)
        elif args.command == "feed":
            from eventstore_local.feed_commands import run as run_feed

            run_feed(args, store)
        elif args.command == "payloads":
            checked, missing = store.tenant(args.tenant_id).check_payloads()
            print(f"{checked} Blob-backed payload(s) checked, {missing} missing (GET /api/tenants/{{t}}/health)")
        elif args.command == "demo":
            from eventstore_local.demo import run_demo

            run_demo(store)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "host":
            from eventstore_local.host.cli import run_with_database

            return run_with_database(args)
        if args.command == "feed" and args.action == "watch":
            from eventstore_local.feed_commands import watch

            watch(args.url, args.from_start)
            return 0
        if args.command == "walk":
            from eventstore_local.walk import send_walk

            send_walk(args.url)
            return 0
        _run(args)
    except (EventStoreError, ValidationError, KeyError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"eventstore: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
