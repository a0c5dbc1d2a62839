"""`eventstore`: the one command-line entry point for people."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

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

    migrate = commands.add_parser(
        "migrate",
        help="bring the registry and every tenant's schema to the latest version (resumable: tenants already "
        "there are skipped)",
    )
    migrate.add_argument("--every", action="store_true", help="migrate every tenant, even those recorded as current")
    grant = commands.add_parser(
        "grant-login",
        help="let a database login run the app: member of the application and maintenance roles, starting "
        "its sessions as the application role (for Entra logins and PgBouncer in transaction mode)",
    )
    grant.add_argument("login")
    grant.add_argument("--dsn-name", default="default", help="named database (default: the main one)")
    principal = commands.add_parser(
        "entra-principal",
        help="as the server's Entra administrator (EVENTSTORE_DATABASE_URL, token in PGPASSWORD): create the "
        "database login of a managed identity, unless it exists",
    )
    principal.add_argument("login", help="the login's name (the Function App's name)")
    principal.add_argument("object_id", help="the identity's object (principal) id")
    partitions = commands.add_parser("partitions", help="create monthly partitions ahead of time")
    partitions.add_argument("--months-ahead", type=int, default=None)
    commands.add_parser("demo", help="record a Marain expense-claim walk and print history and state")
    payloads = commands.add_parser(
        "payloads", help="look for every Blob-backed payload of a tenant; list the missing ones in its health"
    ).add_subparsers(dest="action", required=True)
    check = payloads.add_parser("check", help="one HEAD per payload: record the missing, clear the restored")
    check.add_argument("tenant_id")
    walk = commands.add_parser(
        "walk",
        help="send the expense-claim walk to a running host over HTTP, then deal.won messages to its sample engine",
    )
    walk.add_argument("--url", default="http://127.0.0.1:7071/api", help="the host's API (default %(default)s)")
    _add_engine_arguments(walk)
    walk.add_argument(
        "--email-url", default=None, help="the sample engine's email destination (default http://127.0.0.1:7074)"
    )
    walk.add_argument("--no-engine", dest="engine", action="store_false", help="skip the sample engine's part")
    walk.add_argument(
        "--spike",
        action="store_true",
        help="instead: drive the sample engine into a failure spike and out of it, and show the page, the Slack "
        "posts and the resolve the host's local alert receivers get (2-3 minutes with the default alert schedule)",
    )
    engine = commands.add_parser(
        "engine",
        help="run the sample engine (deal.won from the engine-messages queue) and its destinations in the "
        "foreground, against a running API (`eventstore host` already runs one)",
    )
    engine.add_argument("--url", default="http://127.0.0.1:7071/api", help="the API (default %(default)s)")
    _add_engine_arguments(engine)
    engine.add_argument("--crm-port", type=int, default=7073, help="CRM destination port (default 7073; 0: free)")
    engine.add_argument("--email-port", type=int, default=7074, help="email destination port (default 7074; 0: free)")
    views = commands.add_parser("views", help="the views kept from each tenant's all-stream").add_subparsers(
        dest="action", required=True
    )
    views_status = views.add_parser("status", help="each view's checkpoint, lag and stop (every tenant by default)")
    views_status.add_argument("--tenant", help="only this tenant")
    views_run = views.add_parser("run", help="apply pending events to the views now (every tenant by default)")
    views_run.add_argument("--tenant", help="only this tenant")
    rebuild = views.add_parser("rebuild", help="build a view again from the start beside the live one, then swap")
    rebuild.add_argument("name", help="the view (e.g. instances)")
    rebuild.add_argument("--tenant", help="only this tenant")
    _add_operation_commands(commands)
    from eventstore_local.host.cli import add_arguments as add_host_arguments

    add_host_arguments(
        commands.add_parser(
            "host",
            help="serve the Functions app locally: HTTP on 127.0.0.1:7071/api, queues via Azurite, timers; "
            "embedded PostgreSQL and Azurite when nothing is configured",
        )
    )
    return parser


def _add_operation_commands(commands: Any) -> None:
    """The commands that operate a deployment: the feed, alerts, replay, retention, dead letters, reports."""
    from eventstore_local.feed_commands import add_arguments as add_feed_arguments

    add_feed_arguments(
        commands.add_parser("feed", help="the change feed: publish now, a tenant's feed health, watch arrivals")
    )
    from eventstore_local.alert_commands import add_arguments as add_alert_arguments

    add_alert_arguments(commands.add_parser("alerts", help="alerts: watch the local receivers of `eventstore host`"))
    from eventstore_local.replay_commands import add_arguments as add_replay_arguments

    add_replay_arguments(
        commands.add_parser(
            "replay",
            help="send stored messages to the engine's router again (one, or a bulk filter) through a running "
            "app, and follow, list, pause, resume or cancel the jobs",
        )
    )
    from eventstore_local.retention_commands import add_arguments as add_retention_arguments

    add_retention_arguments(
        commands.add_parser(
            "retention", help="payloads past EVENTSTORE_RETENTION_DAYS: status, or move them to cold storage now"
        )
    )
    from eventstore_local.dead_letter_commands import add_arguments as add_dead_letter_arguments

    add_dead_letter_arguments(
        commands.add_parser(
            "dead-letters",
            help="messages the ingest queues gave up on, kept by a running app: list, show, redrive",
        )
    )
    from eventstore_local.report_commands import add_arguments as add_report_arguments

    add_report_arguments(
        commands.add_parser("report", help="reports from a running app: `report failures` (failure rate per day)")
    )


def _add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=None,
        help="connection string of the engine queue's storage (default: AzureWebJobsStorage, else Azurite's "
        "standard ports)",
    )
    parser.add_argument("--queue", default="engine-messages", help="the sample engine's queue (default %(default)s)")


def _views(args: argparse.Namespace, store: EventStore) -> None:
    from rich.progress import Progress

    from eventstore.views import VIEWS, ViewRunner
    from eventstore.views.health import views_health

    tenant_ids = [args.tenant] if args.tenant else [p.tenant_id for p in store.tenants()]
    if args.action == "status":
        for tenant_id in tenant_ids:
            print(tenant_id)
            for view in views_health(store, tenant_id, VIEWS).views:
                lag = f"{view.lag_events} event(s)" + (f", {view.lag_seconds:.1f} s" if view.lag_seconds else "")
                stop = f"; stopped at {view.stopped.event_id}: {view.stopped.reason}" if view.stopped else ""
                print(
                    f"  {view.name:<14} checkpoint {view.checkpoint}, {view.events_applied} applied, lag {lag}{stop}",
                    flush=True,
                )
        return
    runner = ViewRunner(store, VIEWS)
    with Progress(transient=True) as progress:
        if args.action == "run":
            task = progress.add_task("views", total=len(tenant_ids))
            for tenant_id in tenant_ids:
                runs = runner.run_tenant(tenant_id)
                for run in runs:
                    if run.applied or run.stopped or run.error or not run.locked:
                        state = _run_state(run.locked, run.stopped, run.error)
                        progress.console.print(
                            f"{tenant_id} {run.view}: {run.applied} applied{state}", highlight=False, soft_wrap=True
                        )
                progress.advance(task)
            progress.console.print(f"{len(tenant_ids)} tenant(s) brought up to date", highlight=False, soft_wrap=True)
            return
        runner.view(args.name)  # KeyError: an unknown view, before any work
        for tenant_id in tenant_ids:
            task = progress.add_task(f"{args.name} {tenant_id[:12]}", total=None)

            def report(applied: int, total: int, task: Any = task) -> None:
                progress.update(task, completed=applied, total=max(total, applied))

            run = runner.rebuild(tenant_id, args.name, progress=report)
            state = _run_state(run.locked, run.stopped, run.error)
            progress.console.print(
                f"{tenant_id} {args.name}: rebuilt from {run.applied} event(s){state}", highlight=False, soft_wrap=True
            )


def _run_state(locked: bool, stopped: str | None, error: str | None) -> str:
    if error:
        return f"; held: {error}"
    if stopped:
        return f"; stopped: {stopped}"
    return "" if locked else "; busy (another runner holds it)"


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
            from rich.progress import Progress

            with Progress(transient=not sys.stdout.isatty()) as bar:
                task = bar.add_task("tenants", total=None)

                def progress(index: int, total: int, placement: TenantPlacement, version: int) -> None:
                    bar.update(task, completed=index, total=total, description=f"{placement.tenant_id[:16]} v{version}")

                done = store.migrate(progress, every=args.every)
            print(
                f"control schema {store.control_schema} and {len(done)} tenant(s) migrated"
                f" ({len(store.tenants())} registered; those already current were skipped)"
            )
        elif args.command == "grant-login":
            store.grant_login(args.login, args.dsn_name)
            print(f"{args.login} runs the app on DSN {args.dsn_name} as {store.settings.app_role}")
        elif args.command == "partitions":
            created = store.ensure_partitions(args.months_ahead)
            for tenant_id, names in created.items():
                print(f"{tenant_id}: {', '.join(names)}", flush=True)
            print(f"{sum(map(len, created.values()))} partition(s) created; every tenant has its months")
        elif args.command == "feed":
            from eventstore_local.feed_commands import run as run_feed

            run_feed(args, store)
        elif args.command == "payloads":
            checked, missing = store.tenant(args.tenant_id).check_payloads()
            print(f"{checked} Blob-backed payload(s) checked, {missing} missing (GET /api/tenants/{{t}}/health)")
        elif args.command == "demo":
            from eventstore_local.demo import run_demo

            run_demo(store)
        elif args.command == "views":
            _views(args, store)


def _engine(args: argparse.Namespace) -> int:
    """`eventstore engine`: the sample engine in the foreground until Ctrl-C."""
    import threading

    from azure.core.exceptions import AzureError

    from eventstore_local.engine import LocalEngine
    from eventstore_local.walk import default_storage

    storage = args.storage or default_storage()
    engine = LocalEngine(args.url, storage, crm_port=args.crm_port, email_port=args.email_port, queue=args.queue)
    try:
        engine.start()
    except OSError as exc:  # a destination's port in use
        print(f"eventstore: error: {exc} (--crm-port/--email-port 0 pick free ports)", file=sys.stderr)
        return 1
    except AzureError as exc:
        message = str(exc).splitlines()[0]
        print(f"eventstore: error: the engine's queue storage does not answer: {message}", file=sys.stderr)
        return 1
    try:
        print(engine.banner(), flush=True)
        print("press Ctrl-C to stop", flush=True)
        threading.Event().wait()
    finally:
        engine.stop()
    return 0


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
            from eventstore_local.walk import DEFAULT_EMAIL_URL, send_deal_walk, send_spike_walk, send_walk

            if args.spike:
                send_spike_walk(
                    args.url, storage=args.storage, email_url=args.email_url or DEFAULT_EMAIL_URL, queue=args.queue
                )
                return 0
            send_walk(args.url)
            if args.engine:
                send_deal_walk(
                    args.url, storage=args.storage, email_url=args.email_url or DEFAULT_EMAIL_URL, queue=args.queue
                )
            return 0
        if args.command == "engine":
            return _engine(args)
        if args.command == "entra-principal":
            from eventstore.settings import Settings
            from eventstore.store import create_principal

            made = create_principal(Settings().database_url, args.login, args.object_id)
            print(f"login {args.login} {'created' if made else 'already exists'} for principal {args.object_id}")
            return 0
        if args.command == "alerts":
            from eventstore_local.alert_commands import watch as watch_alerts

            watch_alerts(args.pagerduty, args.slack, args.smtp, args.from_start)
            return 0
        if args.command == "report":
            from eventstore_local.report_commands import run as run_report

            return run_report(args)
        if args.command == "replay":
            from eventstore_local.replay_commands import run as run_replay

            return run_replay(args)
        if args.command == "retention":
            from eventstore_local.retention_commands import run as run_retention
            from eventstore_local.settings import AppSettings
            from eventstore_local.standins.environment import local_archive_key

            AppSettings.set(local_archive_key())
            with local_settings() as settings, EventStore(settings) as store:
                return run_retention(args, store)
        if args.command == "dead-letters":
            from eventstore_local.dead_letter_commands import run as run_dead_letters

            return run_dead_letters(args)
        _run(args)
    except (EventStoreError, ValidationError, KeyError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"eventstore: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
