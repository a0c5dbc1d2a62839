"""The HTTP face of the store: problem+json errors, continuation tokens, how an operation is declared and
registered and its OpenAPI document, the wire models, and the counters the functions keep. Blueprints in
`eventstore.functions` declare their operations with these; the domain they call lives in
`eventstore.ingest` and `eventstore.query`."""
