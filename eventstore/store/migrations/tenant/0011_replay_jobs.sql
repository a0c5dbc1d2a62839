-- note: replay jobs: which stored messages go to the engine's router again, how far each job got, and each message's delivery.

-- A job is one request to replay (one message, or a bulk filter over the messages view). Its items are
-- the messages it matched, fixed when it was created, in the order they were received: `position` is
-- that order, so a job pages through a stable list whatever arrives later. The audit stream records who
-- asked, why and what happened (ReplayRequested, MessageReplayed, ReplayJobChanged); these tables are the
-- work's state, which the application role moves along.
CREATE TABLE {schema}.replay_jobs (
    job_id            uuid PRIMARY KEY,
    kind              text COLLATE "C" NOT NULL CHECK (kind IN ('single', 'bulk')),
    filter            jsonb NOT NULL,
    reason            text NOT NULL,
    requested_by      text NOT NULL,
    target            text NOT NULL,
    state             text COLLATE "C" NOT NULL CHECK (state IN ('running', 'paused', 'cancelled', 'finished')),
    paused_reason     text,
    matched           integer NOT NULL CHECK (matched > 0),
    sent              integer NOT NULL DEFAULT 0,
    rate              double precision NOT NULL CHECK (rate > 0),
    canary            integer CHECK (canary > 0),
    canary_checked    boolean NOT NULL DEFAULT false,
    max_failure_rate  double precision CHECK (max_failure_rate >= 0 AND max_failure_rate <= 1),
    last_error        text,
    last_error_at     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);

CREATE INDEX replay_jobs_created ON {schema}.replay_jobs (created_at DESC, job_id);
CREATE INDEX replay_jobs_active ON {schema}.replay_jobs (job_id) WHERE state IN ('running', 'paused');

-- One row per message a job replays. `pending` waits for the driver, which puts it on the replays queue
-- (`queued`); the forwarder claims it (`sending`, until `claimed_until`), sends it and marks it `sent`
-- in the same transaction as its MessageReplayed event. A failed send goes back to `pending` with its
-- error and the time of its next attempt: held, never dropped.
CREATE TABLE {schema}.replay_items (
    job_id           uuid NOT NULL REFERENCES {schema}.replay_jobs (job_id),
    position         integer NOT NULL CHECK (position > 0),
    event_id         uuid NOT NULL,
    replay_id        uuid NOT NULL UNIQUE,
    state            text COLLATE "C" NOT NULL CHECK (state IN ('pending', 'queued', 'sending', 'sent', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz,
    queued_at        timestamptz,
    claimed_until    timestamptz,
    sent_at          timestamptz,
    PRIMARY KEY (job_id, position)
);

-- A message is in at most one unfinished job: a second job over the same messages is refused, not doubled.
CREATE UNIQUE INDEX replay_items_one_active ON {schema}.replay_items (event_id)
    WHERE state IN ('pending', 'queued', 'sending');
CREATE INDEX replay_items_due ON {schema}.replay_items (job_id, state, position);
CREATE INDEX replay_items_event ON {schema}.replay_items (event_id);

GRANT SELECT, INSERT, UPDATE ON {schema}.replay_jobs, {schema}.replay_items TO {app_role};
