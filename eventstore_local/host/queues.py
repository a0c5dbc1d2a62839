"""Queue triggers and queue output bindings against Azure Storage queues (Azurite locally).

Like the Functions host: messages are received in batches with a lock (visibility timeout) that is
renewed while the function runs; success deletes the message; a failure makes it visible again after
host.json `visibilityTimeout`; once its dequeue count reaches `maxDequeueCount` it is copied, in the
encoding it came in, to `<queue>-poison` and deleted. Idle queues are polled with exponential backoff up
to `maxPollingInterval`; a message sent by this host to a queue it listens on wakes the listener.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions import queue as func_queue
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StorageMessage

from eventstore_local.host.config import (
    ConfigError,
    QueueOptions,
    resolve_setting_references,
    storage_connection_string,
)
from eventstore_local.host.functions import FunctionSpec, Invoker, Outcome, trigger_annotation

log = logging.getLogger("eventstore_local.host")

LOCK_SECONDS = 30  # how long a received message stays invisible; renewed at half while its function runs
_MIN_POLL = 0.05


def normalize_queue_name(name: str) -> str:
    """As the Functions host: lower case, then Azure's queue naming rules."""
    normalized = name.strip().lower()
    valid = (
        3 <= len(normalized) <= 63
        and normalized.replace("-", "").isalnum()
        and normalized.isascii()
        and not normalized.startswith("-")
        and not normalized.endswith("-")
        and "--" not in normalized
    )
    if not valid:
        raise ConfigError(f"invalid queue name {name!r}: 3-63 lowercase letters, digits and single hyphens")
    return normalized


def decode_body(content: str, encoding: str) -> bytes:
    """A received message's text as the function's bytes."""
    if encoding == "base64":
        try:
            return base64.b64decode(content.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(
                "message is not valid base64; host.json extensions.queues.messageEncoding is 'base64' "
                "(send with TextBase64EncodePolicy, or set messageEncoding to 'none')"
            ) from exc
    return content.encode("utf-8")


def encode_body(body: bytes, encoding: str) -> str:
    """Bytes to send as message text."""
    if encoding == "base64":
        return base64.b64encode(body).decode("ascii")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("messageEncoding 'none' can only send UTF-8 text") from exc


def to_bodies(value: Any) -> list[bytes]:
    """An output binding's value (str, bytes, QueueMessage or a list of them) as message bodies."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, list | tuple):
        return [body for item in value for body in to_bodies(item)]
    raise TypeError(
        f"a queue output must be str, bytes, func.QueueMessage or a list of them, not {type(value).__name__}"
    )


class StorageQueues:
    """Queue clients per connection setting and queue name; queues are created on first use."""

    def __init__(self, environ: Mapping[str, str], encoding: str, development_storage: str | None = None) -> None:
        self.environ = environ
        self.encoding = encoding
        self.development_storage = development_storage
        self._clients: dict[tuple[str, str], QueueClient] = {}
        self._listeners: dict[tuple[str, str], Callable[[], None]] = {}
        self._lock = threading.Lock()

    def connection_string(self, setting: str | None) -> str:
        return storage_connection_string(setting, self.environ, self.development_storage)

    def client(self, setting: str | None, queue_name: str) -> QueueClient:
        key = (self.connection_string(setting), queue_name)
        with self._lock:
            client = self._clients.get(key)
        if client is not None:
            return client
        # No SDK retries: its back-off (15 s, then longer) would stall start-up and polling when Azurite is
        # down; the listeners retry on their own, and a message whose settling failed reappears after its lock.
        client = QueueClient.from_connection_string(key[0], queue_name, retry_total=0)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        with self._lock:
            return self._clients.setdefault(key, client)

    def on_message(self, setting: str | None, queue_name: str, wake: Callable[[], None]) -> None:
        self._listeners[(self.connection_string(setting), queue_name)] = wake

    def send(self, setting: str | None, queue_name: str, bodies: list[bytes]) -> None:
        client = self.client(setting, queue_name)
        for body in bodies:
            client.send_message(encode_body(body, self.encoding))
        wake = self._listeners.get((self.connection_string(setting), queue_name))
        if wake is not None and bodies:
            wake()

    def send_outputs(self, spec: FunctionSpec, outcome: Outcome) -> None:
        """The function's queue output bindings, after it succeeded."""
        for binding in spec.outputs:
            if binding.get("type") != "queue":
                continue
            name = str(binding.get("name"))
            value = outcome.value if name == "$return" else outcome.outputs.get(name)
            bodies = to_bodies(value)
            if bodies:
                queue_name = normalize_queue_name(resolve_setting_references(str(binding["queueName"]), self.environ))
                self.send(binding.get("connection"), queue_name, bodies)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


@dataclass
class _Lease:
    message: StorageMessage
    pop_receipt: str
    renewed_at: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False


class QueueListener:
    """Runs one queue-triggered function for the messages of its queue."""

    def __init__(self, spec: FunctionSpec, queues: StorageQueues, options: QueueOptions, invoker: Invoker) -> None:
        self.spec = spec
        self.queues = queues
        self.options = options
        self.invoker = invoker
        self.connection: str | None = spec.trigger.get("connection") or None
        queue_name = resolve_setting_references(str(spec.trigger["queueName"]), queues.environ)
        self.queue_name = normalize_queue_name(queue_name)
        self.poison_name = f"{self.queue_name}-poison"
        annotation = trigger_annotation(spec)
        self._as = annotation if annotation in (str, bytes) else None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._in_flight: dict[str, _Lease] = {}
        self._changed = threading.Condition()
        self._executor = ThreadPoolExecutor(
            max_workers=options.batch_size + options.threshold, thread_name_prefix=f"devhost-{spec.name}"
        )
        self._threads: list[threading.Thread] = []
        self._client: QueueClient | None = None

    def start(self) -> None:
        try:
            self._client = self.queues.client(self.connection, self.queue_name)
        except AzureError as exc:
            log.error(
                "queue %s: storage is not reachable (%s); %s starts receiving once it is",
                self.queue_name,
                _first_line(exc),
                self.spec.name,
            )
        self.queues.on_message(self.connection, self.queue_name, self.notify)
        for target, kind in ((self._poll, "poll"), (self._renew, "renew")):
            thread = threading.Thread(target=target, name=f"devhost-{self.spec.name}-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stops receiving and waits for the functions still running."""
        self._stop.set()
        self._wake.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
        self._executor.shutdown(wait=True)

    def notify(self) -> None:
        self._wake.set()

    # -- receiving ---------------------------------------------------------------------------------------

    def _connect(self) -> QueueClient | None:
        while self._client is None and not self._stop.is_set():
            try:
                self._client = self.queues.client(self.connection, self.queue_name)
                log.info("queue %s: storage reachable, receiving", self.queue_name)
            except AzureError:
                self._wake.wait(self.options.max_polling_interval)
                self._wake.clear()
        return self._client

    def _poll(self) -> None:
        client = self._connect()
        if client is None:
            return
        delay, failing = _MIN_POLL, False
        while not self._stop.is_set():
            with self._changed:
                while len(self._in_flight) > self.options.threshold and not self._stop.is_set():
                    self._changed.wait(0.5)
            if self._stop.is_set():
                break
            self._wake.clear()
            try:
                pages = client.receive_messages(
                    messages_per_page=self.options.batch_size, visibility_timeout=LOCK_SECONDS
                ).by_page()
                messages = list(next(pages, []))
            except AzureError as exc:
                if not failing:
                    log.warning("queue %s: cannot receive messages (%s); retrying", self.queue_name, _first_line(exc))
                failing = True
                self._wake.wait(self.options.max_polling_interval)
                continue
            if failing:
                log.info("queue %s: receiving again", self.queue_name)
                failing = False
            if not messages:
                self._wake.wait(delay)
                delay = min(delay * 2, self.options.max_polling_interval)
                continue
            delay = _MIN_POLL
            for message in messages:
                lease = _Lease(message, str(message.pop_receipt))
                with self._changed:
                    self._in_flight[str(message.id)] = lease
                self._executor.submit(self._process, lease)

    def _renew(self) -> None:
        while not self._stop.wait(1.0):
            if self._client is None:
                continue
            with self._changed:
                leases = list(self._in_flight.values())
            for lease in leases:
                if time.monotonic() - lease.renewed_at < LOCK_SECONDS / 2:
                    continue
                with lease.lock:
                    if lease.done:
                        continue
                    try:
                        updated = self._client.update_message(
                            str(lease.message.id), lease.pop_receipt, visibility_timeout=LOCK_SECONDS
                        )
                    except AzureError as exc:
                        log.warning(
                            "queue %s: cannot renew the lock of message %s: %s", self.queue_name, lease.message.id, exc
                        )
                        continue
                    lease.pop_receipt = str(updated.pop_receipt)
                    lease.renewed_at = time.monotonic()

    # -- processing --------------------------------------------------------------------------------------

    def _process(self, lease: _Lease) -> None:
        message = lease.message
        attempt = int(message.dequeue_count or 1)
        started = time.perf_counter()
        try:
            if attempt > self.options.max_dequeue_count:
                self._poison(lease, f"its dequeue count {attempt} is above maxDequeueCount")
                return
            try:
                body = decode_body(str(message.content or ""), self.queues.encoding)
                outcome = self.invoker.invoke(self.spec, self._trigger_value(message, body), retry_count=attempt - 1)
                self.queues.send_outputs(self.spec, outcome)
            except Exception as exc:
                ms = (time.perf_counter() - started) * 1000
                log.error(
                    "queue %s: %s failed on message %s (attempt %d of %d, %.1f ms): %s: %s",
                    self.queue_name,
                    self.spec.name,
                    message.id,
                    attempt,
                    self.options.max_dequeue_count,
                    ms,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
                if attempt >= self.options.max_dequeue_count:
                    self._poison(lease, f"it failed {attempt} times (maxDequeueCount {self.options.max_dequeue_count})")
                else:
                    self._release(lease)
                return
            with lease.lock:
                lease.done = True
                self._delete(lease)
            log.info(
                "queue %s: %s processed message %s (attempt %d) in %.1f ms",
                self.queue_name,
                self.spec.name,
                message.id,
                attempt,
                (time.perf_counter() - started) * 1000,
            )
        except Exception:  # storage errors while settling: the message reappears after its lock and is retried
            log.exception("queue %s: could not settle message %s", self.queue_name, message.id)
        finally:
            with self._changed:
                if self._in_flight.get(str(message.id)) is lease:  # a released message may be back already
                    del self._in_flight[str(message.id)]
                self._changed.notify_all()

    def _trigger_value(self, message: StorageMessage, body: bytes) -> Any:
        if self._as is bytes:
            return body
        if self._as is str:
            return body.decode("utf-8")
        return func_queue.QueueMessage(  # type: ignore[no-untyped-call]
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )

    def _delete(self, lease: _Lease) -> None:
        assert self._client is not None
        self._client.delete_message(str(lease.message.id), lease.pop_receipt)

    def _release(self, lease: _Lease) -> None:
        """Make a failed message visible again after host.json visibilityTimeout."""
        assert self._client is not None
        seconds = max(0, round(self.options.visibility_timeout))
        with lease.lock:
            lease.done = True
            self._client.update_message(str(lease.message.id), lease.pop_receipt, visibility_timeout=seconds)
        log.info("queue %s: message %s will be retried in %d s", self.queue_name, lease.message.id, seconds)

    def _poison(self, lease: _Lease, reason: str) -> None:
        poison = self.queues.client(self.connection, self.poison_name)
        with lease.lock:
            lease.done = True
            poison.send_message(str(lease.message.content or ""))  # as received: same encoding
            self._delete(lease)
        log.warning(
            "queue %s: message %s moved to %s because %s", self.queue_name, lease.message.id, self.poison_name, reason
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
