-- note: the messages view: one row per received message with its processing status, and what settles it.

-- Kept current by the `messages` view (eventstore/views/messages.py) from the all-stream; derived, so
-- the application role may change it and a rebuild starts it over. Every column is a function of the
-- set of events applied, whatever order they arrived in (docs/traces.md).

-- One row per TriggerReceived / InstanceCreationRequestReceived event of the audit stream.
CREATE TABLE {schema}.view_messages (
    event_id              uuid PRIMARY KEY,
    event_type            text COLLATE "C" NOT NULL,
    message_type          text COLLATE "C" NOT NULL,
    source_system         text,
    own_workflow_id       text COLLATE "C",
    workflow_id           text COLLATE "C",
    workflow_instance_id  text COLLATE "C",
    operation_id          text,
    trigger_id            text COLLATE "C",
    payload_sha256        bytea NOT NULL,
    received_at           timestamptz NOT NULL,
    status                text COLLATE "C" NOT NULL,
    latest_execution_id   text COLLATE "C",
    attempts              integer NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL
);

CREATE INDEX view_messages_received ON {schema}.view_messages (received_at, event_id);
CREATE INDEX view_messages_status ON {schema}.view_messages (status, received_at, event_id);
CREATE INDEX view_messages_workflow ON {schema}.view_messages (workflow_id, received_at, event_id);
CREATE INDEX view_messages_trigger ON {schema}.view_messages (trigger_id) WHERE trigger_id IS NOT NULL;
CREATE INDEX view_messages_instance ON {schema}.view_messages (workflow_instance_id)
    WHERE workflow_instance_id IS NOT NULL;

-- Each execution as the messages view needs it: the message it processes (from its ExecutionStarted)
-- and how it ended. The start and the end kept are the first by (recorded_at, event_id) of their kind
-- (a completion before a failure), so duplicates and late arrivals change nothing.
CREATE TABLE {schema}.view_message_executions (
    execution_id      text COLLATE "C" PRIMARY KEY,
    message_event_id  uuid,
    workflow_id       text COLLATE "C",
    start_event_id    uuid,
    started_at        timestamptz,
    end_event_id      uuid,
    ended_at          timestamptz,
    outcome           text COLLATE "C",
    dead_lettered     boolean NOT NULL DEFAULT false
);

CREATE INDEX view_message_executions_message ON {schema}.view_message_executions (message_event_id)
    WHERE message_event_id IS NOT NULL;

-- Engine outcomes that settle a message without a trace: a trigger's TransitionCompleted /
-- TransitionFailed (linked by the trigger's id, or by a correlation id that is the message's
-- operationId), an InstanceCreated / InstanceCreationFailed (linked to the creation request of that
-- instance).
CREATE TABLE {schema}.view_message_outcomes (
    event_id        uuid PRIMARY KEY,
    outcome         text COLLATE "C" NOT NULL,
    trigger_id      text COLLATE "C",
    correlation_id  uuid,
    instance_id     text COLLATE "C",
    creation        boolean NOT NULL,
    workflow_id     text COLLATE "C",
    recorded_at     timestamptz NOT NULL
);

CREATE INDEX view_message_outcomes_trigger ON {schema}.view_message_outcomes (trigger_id)
    WHERE trigger_id IS NOT NULL;
CREATE INDEX view_message_outcomes_correlation ON {schema}.view_message_outcomes (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX view_message_outcomes_creation ON {schema}.view_message_outcomes (instance_id) WHERE creation;

GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.view_messages, {schema}.view_message_executions,
    {schema}.view_message_outcomes TO {app_role};
