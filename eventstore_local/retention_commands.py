"""`eventstore retention status|run [--tenant T] [--dry-run]`: where retention stands for each tenant (the
oldest payload still held, what is past the cutoff, what was moved), and a run of the archiver now, with a
progress bar (docs/retention.md). Works on the database directly, like `eventstore views`; locally the
archive key is the one `eventstore host` made in `.local/keys/`."""

from __future__ import annotations

import argparse
from typing import Any

from eventstore.retention.archiver import Archiver
from eventstore.store import EventStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="each tenant: oldest payload held, due past the cutoff, moved")
    status.add_argument("--tenant", metavar="T", default=None, help="only this tenant")
    run = actions.add_parser("run", help="move the payloads past the cutoff to cold storage now")
    run.add_argument("--tenant", metavar="T", default=None, help="only this tenant")
    run.add_argument("--dry-run", action="store_true", help="only say what would move")
    run.add_argument("--requested-by", metavar="WHO", default=None, help="who runs it (recorded; default user@host)")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def run(args: argparse.Namespace, store: EventStore, say: Any = print) -> int:
    from rich.progress import Progress

    from eventstore_local.replay_commands import default_requester

    settings = store.settings
    archiver = Archiver(store, settings, requested_by=getattr(args, "requested_by", None) or default_requester())
    tenant_ids = [args.tenant] if args.tenant else [p.tenant_id for p in store.tenants()]
    cutoff = archiver.cutoff()
    if args.action == "status":
        days, tier = settings.retention_days, settings.retention_tier
        say(f"retention {days} days (cutoff {cutoff:%Y-%m-%d %H:%M} UTC), tier {tier}")
        keys = store.archive_keys()
        previous = keys.previous_kids if keys is not None else []
        for tenant_id in tenant_ids:
            retention = store.retention(tenant_id)
            f = retention.figures(cutoff)
            oldest = f"{f.oldest_held_at:%Y-%m-%d}" if f.oldest_held_at else "-"
            say(
                f"  {tenant_id}: oldest payload held {oldest}; {f.held_before} past the cutoff "
                f"({_size(f.held_bytes_before)}); moved {f.archived_events} ({_size(f.archived_bytes)}) "
                f"in {f.segments} segment(s)"
            )
            if previous:  # a rotation in progress: how far the re-wrapping is
                under = retention.count_wrapped_under(previous)
                say(f"    data keys still under a previous archive key: {under}")
        return 0
    moved = 0
    with Progress(transient=True) as progress:
        for tenant_id in tenant_ids:
            task = progress.add_task(f"retention {tenant_id[:12]}", total=None)

            def report(done: int, due: int, task: Any = task) -> None:
                progress.update(task, completed=done, total=max(due, done))

            result = archiver.run_tenant(tenant_id, dry_run=args.dry_run, progress=report)
            progress.remove_task(task)
            if args.dry_run:
                progress.console.print(
                    f"{tenant_id}: {result.due} payload(s) ({_size(result.due_bytes)}) would move", highlight=False
                )
            elif not result.locked:
                progress.console.print(f"{tenant_id}: busy (another archiver holds it)", highlight=False)
            else:
                moved += result.events
                progress.console.print(
                    f"{tenant_id}: {result.events} payload(s) ({_size(result.bytes)}) moved in "
                    f"{len(result.segments)} segment(s)",
                    highlight=False,
                )
                for what, count in (
                    ("large payloads' hot blobs deleted", result.hot_blobs_deleted),
                    ("data keys re-wrapped under the current archive key", result.rewrapped),
                    ("orphan segments deleted", result.orphans_deleted),
                ):
                    if count:
                        say(f"  {what}: {count}")
                for partition, before, after in result.compacted:
                    say(f"  partition {partition} compacted: {_size(before)} -> {_size(after)}")
    if not args.dry_run:
        say(f"{moved} payload(s) moved to cold storage ({settings.retention_tier})")
    return 0
