-- note: alerts (issue 12): the failure-rate rule's incidents and the notifications waiting to go out.

-- One row per (rule, subject) ever alerted on: its PagerDuty dedup key, open or resolved. Opening is an
-- INSERT ... ON CONFLICT DO UPDATE ... WHERE state = 'resolved' RETURNING: of two evaluators at once, only
-- the one whose statement opened it enqueues the trigger (docs/alerts.md).
CREATE TABLE {schema}.alert_incidents (
    dedup_key     text COLLATE "C" PRIMARY KEY,
    rule          text COLLATE "C" NOT NULL,
    subject       text NOT NULL,
    state         text COLLATE "C" NOT NULL CHECK (state IN ('open', 'resolved')),
    opened_at     timestamptz NOT NULL,
    resolved_at   timestamptz,
    figures       jsonb NOT NULL,
    evaluated_at  timestamptz NOT NULL DEFAULT now()
);

-- The outbox: what each channel must be told, once. `notice_key` makes a notification unique per channel
-- (a trigger of one incident, a dead letter's event id); `ordering_key` holds back a notification while an
-- earlier one with the same key is unsent (a resolve never overtakes its trigger).
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

-- The notices are collected from the views by set difference against the outbox (`TenantAlerts.collect`):
-- these keep that to the recent dead letters and faults.
CREATE INDEX view_trace_executions_dead_lettered ON {schema}.view_trace_executions (last_event_at)
    WHERE dead_lettered;
-- The weekly summary reads the failed executions of a range by their end.
CREATE INDEX view_trace_executions_failed ON {schema}.view_trace_executions (completed_at) WHERE status = 'failed';
CREATE INDEX view_instances_faulted ON {schema}.view_instances (faulted_at) WHERE faulted_at IS NOT NULL;

-- An error's text as JSON, or NULL when PostgreSQL's jsonb cannot hold it (a \u0000 escape, a lone
-- surrogate): one odd error must never stop a tenant's alerts.
CREATE FUNCTION {schema}.try_jsonb(value text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN value::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

GRANT EXECUTE ON FUNCTION {schema}.try_jsonb(text) TO {app_role};
GRANT SELECT, INSERT, UPDATE ON {schema}.alert_incidents TO {app_role};
GRANT SELECT, INSERT, UPDATE ON {schema}.alert_outbox TO {app_role};
