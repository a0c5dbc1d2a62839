"""One blueprint per area; `function_app.py` registers each of `BLUEPRINTS`. Each area's module declares
its HTTP operations beside their handlers; `OPERATIONS` collects them, in the OpenAPI document's order."""

from eventstore.functions import (
    alerts,
    compare,
    console,
    dead_letters,
    erasures,
    feed,
    health,
    ingest,
    metrics,
    openapi,
    partitions,
    query,
    replay,
    retention,
    tenants,
    traces,
    views,
)

OPERATIONS = (
    *ingest.OPERATIONS,
    *tenants.OPERATIONS,
    *query.OPERATIONS,
    *traces.OPERATIONS,
    *metrics.OPERATIONS,
    *compare.OPERATIONS,
    *feed.OPERATIONS,
    *health.OPERATIONS,
    *views.OPERATIONS,
    *replay.OPERATIONS,
    *alerts.OPERATIONS,
    *dead_letters.OPERATIONS,
    *erasures.OPERATIONS,
    *openapi.OPERATIONS,
)

BLUEPRINTS = (
    partitions.blueprint,
    tenants.blueprint,
    ingest.blueprint,
    query.blueprint,
    traces.blueprint,
    metrics.blueprint,
    compare.blueprint,
    openapi.openapi_blueprint(OPERATIONS),
    health.blueprint,
    feed.blueprint,
    views.blueprint,
    replay.blueprint,
    alerts.blueprint,
    retention.blueprint,
    dead_letters.blueprint,
    erasures.blueprint,
    console.blueprint,
)

__all__ = ["BLUEPRINTS", "OPERATIONS"]
