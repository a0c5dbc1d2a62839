"""Metrics to Application Insights through OpenTelemetry, when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set.

What is exported (docs/telemetry.md): every in-process counter of `eventstore.http.metrics` under its own
name and labels, and three timings in seconds: `ingest_duration` (one append or recorded message),
`feed_publish_duration` (one publish pass of a tenant's sink) and `view_catch_up_duration` (one catch-up of
a tenant's view). No instrument carries the tenant: the set of tenants grows without bound, and each set of
attributes is a row per export interval in Application Insights; the per-tenant figures are the API's.

Without the connection string nothing is configured, nothing of OpenTelemetry is even imported, and
`timed` hands back one shared object that does nothing: the hot paths pay a call and a `None` check.

Only the metrics pipeline is set up here (`configure_azure_monitor`'s metrics half: the distro's exporter and
Azure resource detection). The full distro would also send every log record and trace, which the Functions
host already sends to the same resource (duplicates, billed), and patch the HTTP clients; its keyword
arguments cannot turn those off (1.8 resets them from `OTEL_*_EXPORTER`). When the Functions Python worker
configures the distro itself (`PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`) it must be the only one to
do so, and the instruments here use the provider it set.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

from eventstore.settings import TelemetrySettings

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter
    from opentelemetry.sdk.metrics import MeterProvider

INGEST_DURATION = "ingest_duration"
"""Seconds to record one message or append one set of outcomes. Attributes: `operation` (message,
outcomes), `source` (http, queue), `outcome` (recorded, repeated, error)."""
FEED_PUBLISH_DURATION = "feed_publish_duration"
"""Seconds of one publish pass of one tenant's sink. Attributes: `sink`, `outcome` (caught_up, behind,
error)."""
VIEW_CATCH_UP_DURATION = "view_catch_up_duration"
"""Seconds of one catch-up of one tenant's view. Attributes: `view`, `outcome` (caught_up, behind,
stopped, error)."""

_DESCRIPTIONS = {
    INGEST_DURATION: "Time to record one message or append one set of outcome events",
    FEED_PUBLISH_DURATION: "Time of one change-feed publish pass of one tenant's sink",
    VIEW_CATCH_UP_DURATION: "Time of one catch-up of one tenant's view",
}
METER_NAME = "eventstore"

log = logging.getLogger(__name__)


class Timing:
    """What `timed` hands back. This base does nothing: it is what every call gets when telemetry is off."""

    __slots__ = ()

    def __enter__(self) -> Timing:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def set(self, **attributes: str) -> None:
        """Add attributes known only at the end (the outcome)."""


_OFF = Timing()


class _Timed(Timing):
    __slots__ = ("_attributes", "_histogram", "_start")

    def __init__(self, histogram: Histogram, attributes: dict[str, str]) -> None:
        self._histogram = histogram
        self._attributes = attributes
        self._start = 0.0

    def __enter__(self) -> Timing:
        self._start = time.perf_counter()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        elapsed = time.perf_counter() - self._start
        if e is not None:
            self._attributes["outcome"] = "error"
        self._histogram.record(elapsed, self._attributes)

    def set(self, **attributes: str) -> None:
        self._attributes.update(attributes)


class _Instruments:
    """The meter's instruments, made on first use by name (the counters' names are the in-process ones)."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._lock = threading.Lock()

    def counter(self, name: str) -> Counter:
        found = self._counters.get(name)
        if found is None:
            with self._lock:
                found = self._counters.get(name) or self._meter.create_counter(name, unit="1")
                self._counters[name] = found
        return found

    def histogram(self, name: str) -> Histogram:
        found = self._histograms.get(name)
        if found is None:
            with self._lock:
                found = self._histograms.get(name) or self._meter.create_histogram(
                    name, unit="s", description=_DESCRIPTIONS.get(name, "")
                )
                self._histograms[name] = found
        return found


class _Process:
    """What `configure_telemetry` decided for this process."""

    configured = False
    instruments: _Instruments | None = None
    lock = threading.Lock()


_process = _Process()


def configure_telemetry(settings: TelemetrySettings) -> bool:
    """Once per process: export metrics to Application Insights if `settings` has a connection string.
    Returns whether metrics are exported. Later calls return the first call's answer."""
    with _process.lock:
        if _process.configured:
            return _process.instruments is not None
        _process.configured = True
        if settings.connection_string is None:
            return False
        from opentelemetry import metrics

        if not settings.worker_configures:
            try:
                provider = _meter_provider(settings.connection_string.get_secret_value())
            except Exception:  # a malformed connection string must not fail the requests that build services
                log.exception("metrics are not exported: APPLICATIONINSIGHTS_CONNECTION_STRING was refused")
                return False
            metrics.set_meter_provider(provider)
        _process.instruments = _Instruments(metrics.get_meter(METER_NAME))
        return True


def _meter_provider(connection_string: str) -> MeterProvider:
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
    from opentelemetry.resource.detector.azure.functions import AzureFunctionsResourceDetector
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource, get_aggregated_resources

    # In Azure the detector names the service after the function app (Application Insights' cloud role).
    resource = get_aggregated_resources(
        [AzureFunctionsResourceDetector()], Resource.create({SERVICE_NAME: "eventstore"})
    )
    # The reader's interval is OTEL_METRIC_EXPORT_INTERVAL (milliseconds, 60000 by default); the provider
    # exports what is left when the process exits.
    reader = PeriodicExportingMetricReader(AzureMonitorMetricExporter(connection_string=connection_string))
    return MeterProvider(metric_readers=[reader], resource=resource)


def enabled() -> bool:
    """Whether metrics are being exported (`configure_telemetry` found a connection string)."""
    return _process.instruments is not None


def count(name: str, amount: int, labels: dict[str, str]) -> None:
    """Mirror an in-process counter's increment (`eventstore.http.metrics.Counters.add`)."""
    instruments = _process.instruments
    if instruments is not None:
        instruments.counter(name).add(amount, labels)


def timed(name: str, **attributes: str) -> Timing:
    """`with timed(INGEST_DURATION, source="http") as timing: ...; timing.set(outcome="recorded")`: records
    the block's duration in seconds in the histogram `name` (an exception sets `outcome=error`)."""
    instruments = _process.instruments
    if instruments is None:
        return _OFF
    return _Timed(instruments.histogram(name), attributes)
