-- note: change feed health: each sink's last failure (kept until its next success), so the feed endpoint can say which sink is stuck and why; and redrive stamps on dead letters.

ALTER TABLE {schema}.feed_checkpoints
    ADD COLUMN last_success_at  timestamptz,
    ADD COLUMN failing_since    timestamptz,
    ADD COLUMN last_error       text,
    ADD COLUMN last_error_at    timestamptz;

-- A dead letter stays as a record of the refusal; a redrive that the sink accepts stamps it instead of
-- deleting it, and a new refusal of the same event clears the stamp.
ALTER TABLE {schema}.feed_dead_letters ADD COLUMN redriven_at timestamptz;
