-- note: erasure: the erasure that removed an event's payload, and what the maintenance path may scrub in the views.

-- Set on an event whose payload an erasure removed (its reference is then `erased:<erasure id>`): the id of
-- the erasure's own event in the maintenance stream, which says when, why and by whom.
ALTER TABLE {schema}.events ADD COLUMN erasure_id uuid;

-- The views' copies of what an erasure removes are scrubbed in the erasure's transaction, as the
-- maintenance role: the executions view recomputes what it derived from the scrubbed trace events.
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.view_instances, {schema}.view_trace_events,
    {schema}.view_trace_step_owners, {schema}.view_trace_executions, {schema}.view_trace_steps,
    {schema}.view_trace_unplaced TO {maintenance_role};
