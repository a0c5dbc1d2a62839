"""A local Application Insights ingestion endpoint: a real HTTP server on 127.0.0.1 that takes what the Azure
Monitor exporter (`azure-monitor-opentelemetry-exporter` 1.0.0b58) posts, answers the way the service does, and
keeps what it received.

What the exporter sends (read from `export/_base.py` and `_generated/exporter/_operations/_operations.py`):
`POST {IngestionEndpoint}/v2.1/track`, `Content-Type: application/json`, a JSON array of envelopes
(`{"ver", "name", "time", "iKey", "tags", "data": {"baseType", "baseData"}}`). A metric is `name`
`Microsoft.ApplicationInsights.Metric`, `baseType` `MetricData`, `baseData` `{"metrics": [{"name", "value",
"count", "min"?, "max"?}], "properties": {attribute: value}}`; a counter's `value` is its increase over the
interval, a histogram's the sum of its values with their `count`. The service also takes newline-delimited
envelopes and a gzip body (`Content-Encoding: gzip`), and so does this stand-in.

Answers (the service's): 200 `{"itemsReceived": n, "itemsAccepted": n, "errors": []}`; 206 when some items are
refused, each refusal `{"index", "statusCode": 400, "message"}` (an instrumentation key that is not this one's,
an envelope without `name` or `time`); 400 when every item is refused or the body is not JSON.

Not the service's: `GET /received[?after=N]` lists the accepted envelopes with index > N and `next`.
`environment()` is what to give an app so that it sends here and nowhere else: the connection string, and
statsbeat, SDK stats and the control plane (OneSettings) off, since they go to Microsoft's endpoints or add
the exporter's own figures to what a test reads. Live metrics and Entra ID auth are not used by the app.

    with AppInsightsStandIn() as insights:
        os.environ.update(insights.environment())
        ...
        insights.wait_for(lambda: insights.metric_total("http_problems", status="404") >= 1)
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Never
from urllib.parse import urlsplit

from eventstore_local.standins.arrivals import Arrivals
from eventstore_local.standins.http_server import LocalServer, QuietHandler, send_json

TRACK_PATHS = ("/v2.1/track", "/v2/track")
RECEIVED_PATH = "/received"
METRIC_ENVELOPE = "Microsoft.ApplicationInsights.Metric"
_READ_CAP = 64 * 1_048_576


@dataclass(frozen=True)
class MetricPoint:
    """One metric of one accepted `MetricData` envelope."""

    name: str
    value: float
    count: int
    properties: dict[str, str]
    min: float | None = None
    max: float | None = None


def metric_points(envelopes: Iterable[dict[str, Any]]) -> list[MetricPoint]:
    """The metrics in `envelopes` (other telemetry is left out), in order."""
    points = []
    for envelope in envelopes:
        data = envelope.get("data") or {}
        if envelope.get("name") != METRIC_ENVELOPE or data.get("baseType") != "MetricData":
            continue
        base = data.get("baseData") or {}
        properties = {str(k): str(v) for k, v in (base.get("properties") or {}).items()}
        for metric in base.get("metrics") or []:
            points.append(
                MetricPoint(
                    str(metric["name"]),
                    float(metric["value"]),
                    int(metric.get("count") or 1),
                    properties,
                    metric.get("min"),
                    metric.get("max"),
                )
            )
    return points


def _refusal(index: int, envelope: Any, instrumentation_key: str) -> dict[str, Any] | None:
    if not isinstance(envelope, dict):
        return {"index": index, "statusCode": 400, "message": "Envelope must be a JSON object"}
    for field in ("name", "time"):
        if not envelope.get(field):
            return {
                "index": index,
                "statusCode": 400,
                "message": f"Field '{field}' on type 'Envelope' is required but missing or empty.",
            }
    if envelope.get("iKey") != instrumentation_key:
        return {"index": index, "statusCode": 400, "message": "Invalid instrumentation key"}
    return None


def _envelopes(body: bytes, encoding: str) -> list[Any]:
    if encoding == "gzip" or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode().strip()
    if text.startswith("["):
        items = json.loads(text)
        return items if isinstance(items, list) else [items]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        self.server.owner._post(self)

    def do_GET(self) -> None:
        self.server.owner._get(self)


class AppInsightsStandIn(LocalServer):
    """A local ingestion endpoint for one instrumentation key. See the module docstring for the protocol."""

    handler = _Handler
    thread_name = "appinsights-stand-in"

    def __init__(self, instrumentation_key: str | None = None, *, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(host, port)
        # A key of its own by default: the exporter keeps unsent telemetry on disk per key, so a fresh key
        # never picks up what an earlier run left behind.
        self.instrumentation_key = instrumentation_key or str(uuid.uuid4())
        # (arrival time, envelope); no faults, and no statuses recorded: a count of the track requests instead
        self._arrivals = Arrivals[tuple[float, dict[str, Any]], Never]("envelopes")
        self._requests = 0  # under `self._arrivals.changed`

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connection_string(self) -> str:
        """What `APPLICATIONINSIGHTS_CONNECTION_STRING` takes."""
        return (
            f"InstrumentationKey={self.instrumentation_key};IngestionEndpoint={self.base_url}/;"
            f"LiveEndpoint={self.base_url}/"
        )

    def environment(self) -> dict[str, str]:
        """The app settings that send an app's telemetry here, and only here."""
        return {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": self.connection_string,
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
            "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        }

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        """The accepted envelopes, in arrival order."""
        return [envelope for _, envelope in self._arrivals.items]

    @property
    def requests(self) -> int:
        """How many track requests arrived (accepted or not)."""
        with self._arrivals.changed:
            return self._requests

    def metrics(self, name: str | None = None, **properties: str) -> list[MetricPoint]:
        """The metric points received (named `name`, with these properties), in order."""
        return [
            p
            for p in metric_points(self.envelopes)
            if (name is None or p.name == name) and all(p.properties.get(k) == v for k, v in properties.items())
        ]

    def metric_total(self, name: str, **properties: str) -> float:
        """The sum of the values of `name`: a counter's total since the start, a histogram's summed values."""
        return sum(p.value for p in self.metrics(name, **properties))

    def metric_count(self, name: str, **properties: str) -> int:
        """How many values a histogram recorded (a counter: how many points)."""
        return sum(p.count for p in self.metrics(name, **properties))

    def clear(self) -> None:
        with self._arrivals.changed:
            self._arrivals.clear()
            self._requests = 0

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Block until `condition()` holds, checked at each arrival; `TimeoutError` otherwise."""
        with self._arrivals.changed:
            if not self._arrivals.wait_until(condition, timeout, poll=0.5):
                raise TimeoutError(f"not received in {timeout} s ({len(self._arrivals)} envelopes arrived)")

    # the protocol

    def _post(self, handler: _Handler) -> None:
        received = time.time()
        if urlsplit(handler.path).path not in TRACK_PATHS:
            send_json(handler, 404, {"error": f"no such endpoint: {handler.path}"})
            return
        length = int(handler.headers.get("Content-Length") or 0)
        if not 0 <= length <= _READ_CAP:
            handler.close_connection = True
            send_json(handler, 413, {"itemsReceived": 0, "itemsAccepted": 0, "errors": []})
            return
        body = handler.rfile.read(length)
        with self._arrivals.changed:
            self._requests += 1
        try:
            items = _envelopes(body, (handler.headers.get("Content-Encoding") or "").lower())
        except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            send_json(handler, 400, {"itemsReceived": 0, "itemsAccepted": 0, "errors": [{"message": str(exc)}]})
            return
        errors = [e for i, item in enumerate(items) if (e := _refusal(i, item, self.instrumentation_key))]
        refused = {e["index"] for e in errors}
        accepted = [item for i, item in enumerate(items) if i not in refused]
        self._arrivals.accept(*((received, item) for item in accepted))
        status = 200 if not errors else 206 if accepted else 400
        send_json(handler, status, {"itemsReceived": len(items), "itemsAccepted": len(accepted), "errors": errors})

    def _get(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        if url.path != RECEIVED_PATH:
            send_json(handler, 404, {"error": f"no such endpoint: {handler.path}"})
            return
        envelopes, total = self._arrivals.page(url.query)
        page = [
            {"index": i, "receivedAt": datetime.fromtimestamp(at, UTC).isoformat(), "envelope": envelope}
            for i, (at, envelope) in envelopes
        ]
        send_json(handler, 200, {"envelopes": page, "next": total})
