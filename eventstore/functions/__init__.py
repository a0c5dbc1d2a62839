"""One blueprint per area; `function_app.py` registers each of `BLUEPRINTS`."""

from eventstore.functions.partitions import blueprint as partitions_blueprint

BLUEPRINTS = (partitions_blueprint,)

__all__ = ["BLUEPRINTS"]
