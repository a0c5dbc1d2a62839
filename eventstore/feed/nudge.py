"""The feed's low-latency path: an append nudges the publisher, which publishes that tenant at once on
a worker thread, instead of waiting for the timer (which stays the safety net).

Nudges coalesce: one arriving while the tenant is being published asks for one more run afterwards,
so what that append wrote goes out too. Two cases are retried for a little while, with a growing pause:
another publisher holds the tenant's lock (the holder may have read its last page before the append
committed), or the append's events are not readable yet because an older transaction is still open
(the feed never passes one; see `read_all`). After that the timer is the safety net.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from eventstore.feed.publisher import TenantRun

log = logging.getLogger(__name__)


class Nudger:
    def __init__(
        self,
        publish: Callable[[str], TenantRun],
        *,
        busy_retry: float = 0.02,
        busy_patience: float = 5.0,
    ) -> None:
        self._publish = publish
        self._busy_retry = busy_retry
        self._busy_patience = busy_patience
        self._cond = threading.Condition()
        # tenant id -> (when it is due, when it was first nudged, retries so far)
        self._pending: dict[str, tuple[float, float, int]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def nudge(self, tenant_id: str) -> None:
        """Ask for `tenant_id` to be published soon. Cheap; never blocks on the database."""
        with self._cond:
            if self._closed:
                return
            now = time.monotonic()
            # A fresh nudge is due now and starts a fresh patience: it is about a new append.
            self._pending[tenant_id] = (now, now, 0)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="feed-nudge", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _next_due(self) -> list[tuple[str, float, int]] | None:
        """Wait for tenants that are due; None once closed."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                due = [(t, first, tries) for t, (at, first, tries) in self._pending.items() if at <= now]
                if due:
                    for tenant_id, _, _ in due:
                        del self._pending[tenant_id]
                    return due
                wait = min((at for at, _, _ in self._pending.values()), default=now + 60) - now
                self._cond.wait(max(wait, 0.001))
            return None

    def _work(self) -> None:
        while (due := self._next_due()) is not None:
            for tenant_id, first, tries in due:
                try:
                    run = self._publish(tenant_id)
                except Exception:
                    log.exception("feed: nudged publish of tenant %s failed (the timer will publish it)", tenant_id)
                    continue
                if (not run.locked or run.waiting) and time.monotonic() - first < self._busy_patience:
                    pause = min(self._busy_retry * 2**tries, 0.5)
                    with self._cond:
                        # A nudge that arrived meanwhile is due sooner; keep it.
                        self._pending.setdefault(tenant_id, (time.monotonic() + pause, first, tries + 1))
