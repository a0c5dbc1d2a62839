-- note: the failure counts view: per hour, workflow and message type, executions started, succeeded, failed and dead-lettered.

-- Kept current by the `failure_counts` view (eventstore/views/failure_counts.py) from the all-stream;
-- derived, so the application role may change it and a rebuild starts it over.

-- The counts. `hour` is the start of the UTC hour; an unknown workflow or message type is ''.
CREATE TABLE {schema}.view_failure_counts (
    hour           timestamptz NOT NULL,
    workflow_id    text COLLATE "C" NOT NULL,
    message_type   text COLLATE "C" NOT NULL,
    started        bigint NOT NULL DEFAULT 0,
    succeeded      bigint NOT NULL DEFAULT 0,
    failed         bigint NOT NULL DEFAULT 0,
    dead_lettered  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, workflow_id, message_type)
);

CREATE INDEX view_failure_counts_workflow ON {schema}.view_failure_counts (workflow_id, hour);

-- Each execution as counted: its start and end (the first by (recorded_at, event_id) of their kind, a
-- completion before a failure), its message, and what it added to the counts (`counted_*`), so that a
-- late event (its start, its message) moves it from one bucket to another exactly.
CREATE TABLE {schema}.view_failure_executions (
    execution_id       text COLLATE "C" PRIMARY KEY,
    message_event_id   uuid,
    workflow_id        text COLLATE "C",
    start_event_id     uuid,
    started_at         timestamptz,
    end_event_id       uuid,
    ended_at           timestamptz,
    outcome            text COLLATE "C",
    dead_lettered      boolean NOT NULL DEFAULT false,
    counted_workflow   text COLLATE "C",
    counted_type       text COLLATE "C",
    counted_started    timestamptz,
    counted_ended      timestamptz,
    counted_outcome    text COLLATE "C",
    counted_dead       boolean NOT NULL DEFAULT false
);

CREATE INDEX view_failure_executions_message ON {schema}.view_failure_executions (message_event_id)
    WHERE message_event_id IS NOT NULL;

-- Each received message's type and workflow (what its executions are counted under).
CREATE TABLE {schema}.view_failure_messages (
    event_id      uuid PRIMARY KEY,
    message_type  text COLLATE "C" NOT NULL,
    workflow_id   text COLLATE "C"
);

GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.view_failure_counts, {schema}.view_failure_executions,
    {schema}.view_failure_messages TO {app_role};
