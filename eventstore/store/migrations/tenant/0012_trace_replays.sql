-- note: the executions view keeps replays: the replay an execution came from (replayId), and steps a replay skipped (StepSkipped) with the step whose output they reused.

-- Columns are added, never changed: rows already in the view keep their meaning (no replay, no skip).
-- A rebuild (eventstore views rebuild executions) copies the tables with `LIKE ... INCLUDING ALL`, so the
-- copies carry these columns and the index too. ExecutionStarted members and StepSkipped events that
-- were recorded before this migration are in the view once it is rebuilt (they were read before it as
-- an execution without a replay, and as an event the view did not know).

-- `replay_id`: an ExecutionStarted's replayId. `skipped_for_*`: a StepSkipped's skippedFor, the
-- completed step (in another execution) whose output the skipping execution reused.
ALTER TABLE {schema}.view_trace_events
    ADD COLUMN replay_id                 uuid,
    ADD COLUMN skipped_for_execution_id  text COLLATE "C",
    ADD COLUMN skipped_for_step_id       text COLLATE "C";

-- The replay an execution came from, from its first ExecutionStarted: the executions a replay produced.
ALTER TABLE {schema}.view_trace_executions ADD COLUMN replay_id uuid;

CREATE INDEX view_trace_executions_replay ON {schema}.view_trace_executions (replay_id, started_at, execution_id)
    WHERE replay_id IS NOT NULL;

-- Set while a step's status is `skipped`: the step whose output it reused (reads return that output).
ALTER TABLE {schema}.view_trace_steps
    ADD COLUMN skipped_for_execution_id  text COLLATE "C",
    ADD COLUMN skipped_for_step_id       text COLLATE "C";
