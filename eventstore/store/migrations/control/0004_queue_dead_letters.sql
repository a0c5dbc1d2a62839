-- note: dead letters of the ingest queues, and the deployment's own alert outbox.

-- Every message the Functions host moved to a poison queue (workflow-messages-poison,
-- workflow-outcomes-poison), kept byte-exact as it was queued once the alert timer has taken it off the
-- poison queue: deployment-wide, because a poisoned message may name no tenant or one never onboarded.
-- The message itself is never changed or deleted by the application (column grants below); a redrive
-- (sending it back to its queue) is stamped on the row.
CREATE TABLE {schema}.queue_dead_letters (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue             text COLLATE "C" NOT NULL,
    message_id        text COLLATE "C" NOT NULL,
    body              bytea NOT NULL,
    body_sha256       bytea NOT NULL,
    base64            boolean NOT NULL,
    tenant_id         text COLLATE "C",
    message_type      text,
    workflow_id       text,
    reason            text NOT NULL,
    dequeue_count     integer,
    queued_at         timestamptz,
    dead_at           timestamptz NOT NULL DEFAULT now(),
    redriven_at       timestamptz,
    redriven_by       text,
    redrive_reason    text,
    redrives          integer NOT NULL DEFAULT 0,
    UNIQUE (queue, message_id)
);

CREATE INDEX queue_dead_letters_tenant ON {schema}.queue_dead_letters (tenant_id, id);

-- Notifications that belong to no tenant's outbox (the queue dead letters): the same shape as a tenant's
-- alert_outbox (tenant/0014), sent by the same sender.
CREATE TABLE {schema}.alert_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel          text COLLATE "C" NOT NULL CHECK (channel IN ('pagerduty', 'slack', 'email')),
    notice_key       text COLLATE "C" NOT NULL,
    ordering_key     text COLLATE "C" NOT NULL,
    kind             text COLLATE "C" NOT NULL,
    body             jsonb NOT NULL,
    state            text COLLATE "C" NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sending', 'sent', 'refused')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    claimed_until    timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    sent_as          text,
    UNIQUE (channel, notice_key)
);

CREATE INDEX alert_outbox_unsent ON {schema}.alert_outbox (channel, id) WHERE state IN ('pending', 'sending');

GRANT SELECT, INSERT ON {schema}.queue_dead_letters TO {app_role};
GRANT UPDATE (redriven_at, redriven_by, redrive_reason, redrives) ON {schema}.queue_dead_letters TO {app_role};
GRANT SELECT, INSERT, UPDATE ON {schema}.alert_outbox TO {app_role};
