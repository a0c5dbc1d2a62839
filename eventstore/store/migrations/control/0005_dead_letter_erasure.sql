-- note: erasure reaches the ingest queues' dead letters: their body, as the maintenance role.

-- A dead letter whose body holds an erased subject's data loses its body (its SHA-256 stays, as an erased
-- event keeps its hash); `erasure_id` names the erasure (its event in the tenant's maintenance stream).
ALTER TABLE {schema}.queue_dead_letters ADD COLUMN erasure_id uuid;

GRANT USAGE ON SCHEMA {schema} TO {maintenance_role};
GRANT SELECT ON {schema}.queue_dead_letters TO {maintenance_role};
GRANT UPDATE (body, erasure_id) ON {schema}.queue_dead_letters TO {maintenance_role};
