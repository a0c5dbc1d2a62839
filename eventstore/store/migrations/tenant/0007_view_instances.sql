-- note: the instances view: one row per workflow instance, its state as the fold of its events makes it.

-- Kept current by the `instances` view (eventstore/views/instances.py) from the all-stream; derived,
-- so the application role may change it and a rebuild starts it over. `context` is the JSON text of
-- the instance's context (text, not jsonb: jsonb cannot hold every string a payload may carry).
CREATE TABLE {schema}.view_instances (
    workflow_instance_id  text COLLATE "C" PRIMARY KEY,
    workflow_id           text COLLATE "C",
    state_id              text,
    status                text COLLATE "C",
    context               text NOT NULL DEFAULT '{{}}',
    last_sequence         bigint NOT NULL,
    last_event_type       text,
    last_error            text,
    paused                boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    faulted_at            timestamptz
);

CREATE INDEX view_instances_status ON {schema}.view_instances (status, workflow_instance_id);
CREATE INDEX view_instances_workflow ON {schema}.view_instances (workflow_id, workflow_instance_id);
CREATE INDEX view_instances_updated ON {schema}.view_instances (updated_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.view_instances TO {app_role};
