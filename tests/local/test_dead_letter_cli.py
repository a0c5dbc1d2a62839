"""`eventstore dead-letters list|show|redrive` against the suite's local host over real HTTP: a kept dead
letter listed with why, shown with its exact body, and sent back to its queue encoded as it came; the app's
refusals and an app that does not answer are one error line, never a traceback.

Run in this process through `dead_letter_commands.run` with the parser `add_arguments` builds (what
`eventstore dead-letters` runs)."""

from __future__ import annotations

import argparse
import base64
import io
import socket
from typing import Any
from uuid import uuid4

import pytest
from azure.storage.queue import QueueClient

from eventstore import EventStore
from eventstore.alerts.poison_queues import PoisonQueues, drain
from eventstore_local import dead_letter_commands
from eventstore_local.dead_letter_commands import DeadLetterCommandFailed, add_arguments
from tests.helpers import random_tenant_id
from tests.http.client import envelope


def command(*argv: str) -> str:
    parser = argparse.ArgumentParser(prog="eventstore dead-letters")
    add_arguments(parser)
    out = io.StringIO()
    assert dead_letter_commands.run(parser.parse_args(list(argv)), out) == 0
    return out.getvalue()


def test_list_show_and_redrive_a_dead_letter(api_url: str, store: EventStore, azurite: Any) -> None:
    queue = f"cli{uuid4().hex[:10]}"
    tenant_id = random_tenant_id()
    body = envelope(tenant_id)
    with QueueClient.from_connection_string(azurite.connection_string, f"{queue}-poison") as poison:
        poison.create_queue()
        poison.send_message(base64.b64encode(body).decode())
    queues = PoisonQueues(azurite.connection_string, 10.0, {f"{queue}-poison": "workflow-messages"})
    assert drain(store, store.settings, queues, notify=False).kept == 1
    [letter] = store.queue_dead_letters().list(queue=f"{queue}-poison")

    listed = command("list", "--tenant", tenant_id, "--url", api_url)
    assert f"{letter.id:>6}" in listed and f"{queue}-poison  tenant {tenant_id}  Submit" in listed
    assert f"UnknownTenant: tenant {tenant_id} was never onboarded" in listed
    shown = command("show", str(letter.id), "--url", api_url)
    assert shown.endswith(body.decode() + "\n") and letter.body_sha256.hex() in shown

    redriven = command("redrive", str(letter.id), "--reason", "fixed", "--requested-by", "ops", "--url", api_url)
    assert redriven.startswith(f"sent back to {queue}:") and "redriven 1x by ops" in redriven
    with QueueClient.from_connection_string(azurite.connection_string, queue) as target:
        [sent] = list(target.receive_messages())
    assert base64.b64decode(sent.content) == body  # as it came: base64, the bytes unchanged
    assert command("list", "--tenant", tenant_id, "--url", api_url) == "no dead letters waiting\n"
    assert "redriven 1x" in command("list", "--tenant", tenant_id, "--all", "--url", api_url)


def test_refusals_and_an_app_that_does_not_answer_are_one_error(api_url: str) -> None:
    with pytest.raises(DeadLetterCommandFailed, match="no queue dead letter has id 9000000000001"):
        command("show", "9000000000001", "--url", api_url)
    with pytest.raises(DeadLetterCommandFailed, match="tenantId"):
        command("list", "--tenant", "not-a-tenant", "--url", api_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeadLetterCommandFailed, match="is the app running"):
        command("list", "--url", f"http://127.0.0.1:{port}/api")
    with pytest.raises(SystemExit):
        command("show", "abc")
