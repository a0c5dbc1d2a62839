"""`eventstore dead-letters list|show|redrive`: the messages the ingest queues gave up on, kept by the app
(`GET /dead-letters`, docs/alerts.md), and sending one back to its queue once its cause is fixed. An HTTP
client of a running app, like `replay` (admin level: pass --key against Azure)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from pydantic import ValidationError

from eventstore.errors import EventStoreError
from eventstore_local.app_client import DEFAULT_URL, AppClient
from eventstore_local.replay_commands import default_requester


class DeadLetterCommandFailed(EventStoreError):
    """The app refused the request, could not be reached, or answered what this command does not know."""


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", metavar="URL", default=DEFAULT_URL, help="the app's API (default %(default)s)")
    parser.add_argument(
        "--key", metavar="KEY", default=None, help="a key of the app, sent as x-functions-key (admin level)"
    )


def _letter_id(text: str) -> str:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a dead letter's id is a positive whole number (got {text!r})")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the dead letters kept, oldest first")
    listing.add_argument("--tenant", metavar="T", default=None, help="only those naming this tenant")
    listing.add_argument("--queue", metavar="Q", default=None, help="only those of this poison queue")
    listing.add_argument("--all", dest="waiting", action="store_false", help="redriven ones too")
    listing.add_argument("--limit", metavar="N", type=int, default=100, help="at most N (default %(default)s)")
    _connection(listing)
    show = actions.add_parser("show", help="one dead letter with its exact body")
    show.add_argument("id", type=_letter_id)
    _connection(show)
    redrive = actions.add_parser("redrive", help="send one back to the queue it came from")
    redrive.add_argument("id", type=_letter_id)
    redrive.add_argument("--reason", metavar="R", default=None, help="why (recorded on the dead letter)")
    redrive.add_argument("--requested-by", metavar="WHO", default=None, help="who asks (default: user@host)")
    _connection(redrive)


def _client(args: argparse.Namespace) -> AppClient:
    return AppClient(
        args.url, args.key, admin_note="the dead-letter routes are admin level", failure=DeadLetterCommandFailed
    )


def _parse(model: Any, document: Any) -> Any:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise DeadLetterCommandFailed(f"the app answered a {model.__name__} this command does not know: {exc}") from exc


def _line(letter: Any) -> str:
    redriven = f", redriven {letter.redrives}x by {letter.redriven_by}" if letter.redrives else ""
    return (
        f"{letter.id:>6}  {letter.dead_at:%Y-%m-%d %H:%M:%S}Z  {letter.queue}  tenant {letter.tenant_id or '-'}  "
        f"{letter.message_type or '-'} / {letter.workflow_id or '-'}{redriven}\n        {letter.reason}"
    )


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from eventstore.http.dead_letter_models import DeadLettersPage, QueueDeadLetter

    with _client(args) as app:
        if args.action == "list":
            params = {"limit": str(max(1, min(args.limit, 500))), "waiting": "true" if args.waiting else "false"}
            if args.tenant:
                params["tenantId"] = args.tenant
            if args.queue:
                params["queue"] = args.queue
            page = _parse(DeadLettersPage, app.call("GET", app.path("dead-letters"), params=params))
            for letter in page.dead_letters:
                print(_line(letter), file=out)
            if not page.dead_letters:
                print("no dead letters" + ("" if args.waiting else " at all") + " waiting", file=out)
            elif page.next_after is not None:
                print(f"(more: the API's nextAfter is {page.next_after})", file=out)
            return 0
        if args.action == "show":
            letter = _parse(QueueDeadLetter, app.call("GET", app.path("dead-letters", args.id)))
            print(_line(letter), file=out)
            print(f"        sha256 {letter.body_sha256}, body ({letter.body_encoding}):", file=out)
            print(letter.body, file=out)
            return 0
        body: dict[str, Any] = {"requestedBy": args.requested_by or default_requester()}
        if args.reason:
            body["reason"] = args.reason
        url = app.path("dead-letters", args.id, "redrive")
        letter = _parse(QueueDeadLetter, app.call("POST", url, body))
        print(f"sent back to {letter.queue.removesuffix('-poison')}:", file=out)
        print(_line(letter), file=out)
        return 0
