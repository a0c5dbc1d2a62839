-- note: change feed health: each sink's last failure (kept until its next success), so the feed endpoint can say which sink is stuck and why.

ALTER TABLE {schema}.feed_checkpoints
    ADD COLUMN last_success_at  timestamptz,
    ADD COLUMN failing_since    timestamptz,
    ADD COLUMN last_error       text,
    ADD COLUMN last_error_at    timestamptz;
