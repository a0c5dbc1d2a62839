"""One blueprint per area; `function_app.py` registers each of `BLUEPRINTS`."""

from eventstore.functions.feed import blueprint as feed_blueprint
from eventstore.functions.health import blueprint as health_blueprint
from eventstore.functions.ingest import blueprint as ingest_blueprint
from eventstore.functions.partitions import blueprint as partitions_blueprint
from eventstore.functions.query import blueprint as query_blueprint
from eventstore.functions.tenants import blueprint as tenants_blueprint

BLUEPRINTS = (
    partitions_blueprint,
    tenants_blueprint,
    ingest_blueprint,
    query_blueprint,
    health_blueprint,
    feed_blueprint,
)

__all__ = ["BLUEPRINTS"]
