-- note: views: each view's checkpoint on the all-stream, and where it stopped when an event could not be applied.

-- One row per view (`instances`, `messages`, ...; a rebuild's shadow has a row of its own). The
-- checkpoint moves in the same transaction as the view's tables, so every event affects a view exactly
-- once. `stopped_*` says which event the view could not apply and why: it stays at that event (never
-- skips it) until the cause is fixed.
CREATE TABLE {schema}.view_checkpoints (
    view               text COLLATE "C" PRIMARY KEY,
    transaction_id     xid8 NOT NULL DEFAULT '0',
    global_position    bigint NOT NULL DEFAULT 0,
    events_applied     bigint NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    last_event_at      timestamptz,
    stopped_event_id   uuid,
    stopped_reason     text,
    stopped_at         timestamptz
);

-- Derived data: the application role keeps it current (and a rebuild starts it over).
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.view_checkpoints TO {app_role};
