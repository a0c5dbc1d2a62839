-- note: payload health: events whose payload was found missing from Blob storage (or not matching its SHA-256) when read, for the tenant's health route. Derived data: the events stay untouched.

CREATE TABLE {schema}.payload_problems (
    event_id         uuid PRIMARY KEY,
    blob_ref         text,
    problem          text NOT NULL CHECK (problem IN ('missing', 'mismatch')),
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    times_seen       bigint NOT NULL DEFAULT 1
);

-- DELETE: a problem is cleared when the payload reads back whole (a restored blob).
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.payload_problems TO {app_role};
