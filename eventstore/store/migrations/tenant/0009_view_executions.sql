-- note: the executions view (traces): each trace event as read, and the executions, steps and unplaced events made of them.

-- Kept current by the `executions` view (eventstore/views/traces.py) from the all-stream; derived, so
-- the application role may change it and a rebuild starts it over. Executions, steps and unplaced
-- events are recomputed from `view_trace_events` for every execution an event touches, so they are a
-- function of the set of trace events applied, whatever order they arrived in (docs/traces.md).

-- One row per trace event (ExecutionStarted/Completed/Failed, StepStarted/Completed/Failed) whose
-- payload could be read. `data` is a step's input (StepStarted) or output (StepCompleted) as JSON text
-- when it is at most the inline limit; over it, `data_by_ref` is set and reads take it from the event.
CREATE TABLE {schema}.view_trace_events (
    event_id          uuid PRIMARY KEY,
    kind              text COLLATE "C" NOT NULL,
    execution_id      text COLLATE "C" NOT NULL,
    step_id           text COLLATE "C",
    instance_id       text COLLATE "C" NOT NULL,
    workflow_id       text COLLATE "C",
    recorded_at       timestamptz NOT NULL,
    message_event_id  uuid,
    operation_id      text,
    replay_of         text,
    name              text,
    attempt           integer,
    idempotency_key   text,
    data              text,
    data_by_ref       boolean NOT NULL DEFAULT false,
    error             text,
    dead_lettered     boolean NOT NULL DEFAULT false
);

CREATE INDEX view_trace_events_execution ON {schema}.view_trace_events (execution_id);

-- Which execution each step belongs to: the one named by its first event by (recorded_at, event_id).
CREATE TABLE {schema}.view_trace_step_owners (
    step_id         text COLLATE "C" PRIMARY KEY,
    execution_id    text COLLATE "C" NOT NULL,
    first_at        timestamptz NOT NULL,
    first_event_id  uuid NOT NULL
);

-- One row per execution whose ExecutionStarted has been recorded.
CREATE TABLE {schema}.view_trace_executions (
    execution_id          text COLLATE "C" PRIMARY KEY,
    message_event_id      uuid,
    operation_id          text,
    workflow_id           text COLLATE "C",
    workflow_instance_id  text COLLATE "C" NOT NULL,
    started_at            timestamptz NOT NULL,
    completed_at          timestamptz,
    status                text COLLATE "C" NOT NULL,
    replay_of             text,
    error                 text,
    dead_lettered         boolean NOT NULL DEFAULT false,
    last_event_at         timestamptz NOT NULL
);

CREATE INDEX view_trace_executions_started ON {schema}.view_trace_executions (started_at, execution_id);
CREATE INDEX view_trace_executions_status ON {schema}.view_trace_executions (status, started_at, execution_id);
CREATE INDEX view_trace_executions_workflow ON {schema}.view_trace_executions (workflow_id, started_at, execution_id);
CREATE INDEX view_trace_executions_message ON {schema}.view_trace_executions (message_event_id)
    WHERE message_event_id IS NOT NULL;

-- One row per step of a recorded execution. `input_event_id` / `output_event_id` name the event that
-- carried an input or output over the inline limit (then `input` / `output` are NULL).
CREATE TABLE {schema}.view_trace_steps (
    step_id          text COLLATE "C" PRIMARY KEY,
    execution_id     text COLLATE "C" NOT NULL,
    name             text,
    status           text COLLATE "C" NOT NULL,
    attempts         integer NOT NULL,
    idempotency_key  text COLLATE "C",
    input            text,
    input_event_id   uuid,
    output           text,
    output_event_id  uuid,
    error            text,
    started_at       timestamptz,
    completed_at     timestamptz,
    first_at         timestamptz NOT NULL,
    attempt_history  text NOT NULL DEFAULT '[]'
);

CREATE INDEX view_trace_steps_execution ON {schema}.view_trace_steps (execution_id, first_at, step_id);
CREATE INDEX view_trace_steps_idempotency ON {schema}.view_trace_steps (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Trace events the view could not place, and why: a payload it cannot read (not JSON, a missing or
-- invalid member, kept in Blob storage), or an event that does not fit the rest (a step or end of an
-- execution whose start is not recorded, a step reported for two executions, an execution reported
-- in two instances). The log keeps every one of them as it arrived.
CREATE TABLE {schema}.view_trace_unplaced (
    event_id      uuid PRIMARY KEY,
    event_type    text NOT NULL,
    execution_id  text COLLATE "C",
    step_id       text COLLATE "C",
    reason        text COLLATE "C" NOT NULL,
    detail        text NOT NULL,
    recorded_at   timestamptz NOT NULL
);

CREATE INDEX view_trace_unplaced_execution ON {schema}.view_trace_unplaced (execution_id)
    WHERE execution_id IS NOT NULL;
CREATE INDEX view_trace_unplaced_recorded ON {schema}.view_trace_unplaced (recorded_at, event_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.view_trace_events, {schema}.view_trace_step_owners,
    {schema}.view_trace_executions, {schema}.view_trace_steps, {schema}.view_trace_unplaced TO {app_role};
