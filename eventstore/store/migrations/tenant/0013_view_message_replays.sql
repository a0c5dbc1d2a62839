-- note: the messages view counts each message's replays (MessageReplayed events) and names the last one.

-- Kept by the `messages` view like its other columns; a rebuild recomputes them from the audit stream.
ALTER TABLE {schema}.view_messages
    ADD COLUMN replay_count integer NOT NULL DEFAULT 0,
    ADD COLUMN last_replay_id uuid,
    ADD COLUMN last_replay_at timestamptz;
