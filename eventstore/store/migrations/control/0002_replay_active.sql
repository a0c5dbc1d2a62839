-- note: tenants with replay jobs to drive: the replay timer visits these instead of every tenant.

-- Marked when a job is created or resumed, unmarked by the driver once the tenant has no unfinished job
-- (only if not marked again meanwhile). A lost mark is caught by the timer's periodic full pass.
CREATE TABLE IF NOT EXISTS {schema}.replay_active (
    tenant_id  text PRIMARY KEY,
    marked_at  timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.replay_active TO {app_role};
