"""The HTTP face of the store: problem+json errors, continuation tokens, the route table and its OpenAPI
document, the wire models, and the counters the functions keep. Blueprints in `eventstore.functions`
use these; the domain they call lives in `eventstore.ingest` and `eventstore.query`."""
