"""The feed's low-latency path: an append nudges the publisher, which publishes that tenant at once on
a worker thread, instead of waiting for the timer (which stays the safety net).

Nudges coalesce: one arriving while the tenant is being published asks for one more run afterwards,
so what that append wrote goes out too. Tenants are published concurrently (a few workers), so one
tenant's slow sink does not delay another tenant's events; and the nudge leaves a sink that failed
lately to the timer. Two cases are retried for a little while, with a growing pause: another publisher
holds one of the tenant's sinks (it may have read its last page before the append committed), or the
append's events are not readable yet because an older transaction is still open (the feed never passes
one; see `read_all`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from eventstore.feed.publisher import TenantRun

log = logging.getLogger(__name__)


class Nudger:
    def __init__(
        self,
        publish: Callable[[str], TenantRun],
        *,
        workers: int = 4,
        busy_retry: float = 0.02,
        busy_patience: float = 5.0,
    ) -> None:
        self._publish = publish
        self._busy_retry = busy_retry
        self._busy_patience = busy_patience
        self._cond = threading.Condition()
        # tenant id -> (when it is due, when it was first nudged, retries so far)
        self._pending: dict[str, tuple[float, float, int]] = {}
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feed-nudge")
        self._thread: threading.Thread | None = None
        self._closed = False

    def nudge(self, tenant_id: str) -> None:
        """Ask for `tenant_id` to be published soon. Cheap; never blocks on the database."""
        with self._cond:
            if self._closed:
                return
            if tenant_id in self._running:
                self._again.add(tenant_id)  # published once more when the running publish ends
                return
            now = time.monotonic()
            self._pending[tenant_id] = (now, now, 0)  # a fresh nudge is due now, with fresh patience
            if self._thread is None:
                self._thread = threading.Thread(target=self._dispatch, name="feed-nudge", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _dispatch(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                due = [t for t, (at, _, _) in self._pending.items() if at <= now and t not in self._running]
                for tenant_id in due:
                    _, first, tries = self._pending.pop(tenant_id)
                    self._running.add(tenant_id)
                    self._pool.submit(self._run, tenant_id, first, tries)
                waits = [at for t, (at, _, _) in self._pending.items() if t not in self._running]
                self._cond.wait(max(min(waits, default=now + 60) - now, 0.001))

    def _run(self, tenant_id: str, first: float, tries: int) -> None:
        retry = False
        try:
            run = self._publish(tenant_id)
            retry = not run.locked or run.waiting
        except Exception:
            log.exception("feed: nudged publish of tenant %s failed (the timer will publish it)", tenant_id)
        finally:
            # Whatever happened, the tenant leaves `_running`, or its later nudges would wait for ever.
            with self._cond:
                self._running.discard(tenant_id)
                now = time.monotonic()
                if tenant_id in self._again:
                    self._again.discard(tenant_id)
                    self._pending[tenant_id] = (now, now, 0)
                elif retry and now - first < self._busy_patience:
                    pause = min(self._busy_retry * 2**tries, 0.5)
                    self._pending.setdefault(tenant_id, (now + pause, first, tries + 1))
                self._cond.notify()
