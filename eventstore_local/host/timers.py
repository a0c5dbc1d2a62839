"""Timer triggers: NCRONTAB schedules (6 fields, seconds first; 5 fields also accepted) or TimeSpan
intervals (`hh:mm:ss`), in UTC unless the app setting WEBSITE_TIME_ZONE names an IANA time zone.

As the Functions host, a timer never overlaps itself: occurrences missed while it runs are skipped,
and `past_due` is set when an invocation starts more than a second after its scheduled time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from azure.functions.timer import TimerRequest
from croniter import croniter

from eventstore_local.host.config import ConfigError, parse_timespan, resolve_setting_references
from eventstore_local.host.functions import FunctionSpec, Invoker, Outcome

log = logging.getLogger("eventstore_local.host")

PAST_DUE_AFTER = timedelta(seconds=1)


class Schedule:
    """When a timer fires."""

    def __init__(self, expression: str, zone: tzinfo = UTC) -> None:
        self.expression = expression.strip()
        self.zone = zone
        self.interval: timedelta | None = None
        fields = self.expression.split()
        if ":" in self.expression and len(fields) == 1:
            try:
                seconds = parse_timespan(self.expression, what="schedule")
            except ConfigError as exc:
                raise ConfigError(f"invalid timer schedule {expression!r}") from exc
            if seconds <= 0:
                raise ConfigError(f"invalid timer schedule {expression!r}: the interval must be positive")
            self.interval = timedelta(seconds=seconds)
        elif len(fields) in (5, 6):
            if not croniter.is_valid(self.expression, second_at_beginning=len(fields) == 6):
                raise ConfigError(f"invalid NCRONTAB schedule {expression!r}")
        else:
            raise ConfigError(
                f"invalid timer schedule {expression!r}: expected NCRONTAB "
                "'{second} {minute} {hour} {day} {month} {day-of-week}' or a TimeSpan such as '00:05:00'"
            )

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (an aware datetime)."""
        if self.interval is not None:
            return moment + self.interval
        fields = self.expression.split()
        local = moment.astimezone(self.zone)
        it = croniter(self.expression, local, second_at_beginning=len(fields) == 6)
        following: datetime = it.get_next(datetime)
        return following.astimezone(UTC)


def time_zone(environ: Mapping[str, str]) -> tzinfo:
    name = environ.get("WEBSITE_TIME_ZONE", "").strip()
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"WEBSITE_TIME_ZONE {name!r} is not an IANA time zone name") from exc


class TimerRunner:
    """Runs one timer-triggered function on its schedule."""

    def __init__(
        self,
        spec: FunctionSpec,
        invoker: Invoker,
        environ: Mapping[str, str],
        on_success: Callable[[FunctionSpec, Outcome], None] | None = None,
    ) -> None:
        self.spec = spec
        self.invoker = invoker
        self.on_success = on_success
        self.schedule = Schedule(resolve_setting_references(str(spec.trigger["schedule"]), environ), time_zone(environ))
        self.run_on_startup = bool(spec.trigger.get("runOnStartup"))
        self.next_run: datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"devhost-{spec.name}-timer", daemon=True)

    def start(self) -> None:
        self.next_run = self.schedule.next_after(datetime.now(UTC))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        last: datetime | None = None
        if self.run_on_startup:
            self._fire(datetime.now(UTC), last, past_due=False, why="run on startup")
            last = datetime.now(UTC)
        scheduled = self.next_run or self.schedule.next_after(datetime.now(UTC))
        while not self._stop.wait(max(0.0, (scheduled - datetime.now(UTC)).total_seconds())):
            now = datetime.now(UTC)
            if now < scheduled:  # woke early (clock granularity)
                continue
            self._fire(scheduled, last, past_due=now - scheduled > PAST_DUE_AFTER, why="schedule")
            last = scheduled
            scheduled = self.schedule.next_after(max(datetime.now(UTC), scheduled))
            self.next_run = scheduled

    def _fire(self, scheduled: datetime, last: datetime | None, *, past_due: bool, why: str) -> None:
        following = self.schedule.next_after(max(datetime.now(UTC), scheduled))
        status = {
            "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
            "Next": following.isoformat(),
            "LastUpdated": datetime.now(UTC).isoformat(),
        }
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        started = time.perf_counter()
        try:
            outcome = self.invoker.invoke(self.spec, request)
            if self.on_success is not None:
                self.on_success(self.spec, outcome)
        except Exception as exc:
            log.error("timer %s (%s) failed: %s: %s", self.spec.name, why, type(exc).__name__, exc, exc_info=exc)
            return
        # A timer that fires every few seconds (the change feed's) would drown the log: its runs go to DEBUG.
        frequent = following - datetime.now(UTC) < timedelta(minutes=1)
        log.log(
            logging.DEBUG if frequent else logging.INFO,
            "timer %s ran (%s%s) in %.1f ms; next at %s",
            self.spec.name,
            why,
            ", past due" if past_due else "",
            (time.perf_counter() - started) * 1000,
            following.isoformat(timespec="seconds"),
        )
