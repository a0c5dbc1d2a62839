-- note: tenant registry: where each tenant's data lives (DSN name, schema, Blob container).
CREATE TABLE IF NOT EXISTS {schema}.tenants (
    tenant_id       text PRIMARY KEY,
    dsn_name        text NOT NULL,
    schema_name     text NOT NULL,
    container_name  text NOT NULL,
    schema_version  integer NOT NULL DEFAULT 0,
    onboarded_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dsn_name, schema_name),
    -- One container per tenant: its payloads, retention and erasure must never touch another tenant's.
    UNIQUE (container_name)
);
