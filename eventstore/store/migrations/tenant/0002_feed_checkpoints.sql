-- note: change feed: one checkpoint per sink (moves forward only) and dead letters for refused events.

-- Where each sink (Event Grid topic, webhook) has got to on the all-stream: a (transaction id,
-- global position) pair, so a slow or broken sink never holds back the others.
CREATE TABLE {schema}.feed_checkpoints (
    sink             text COLLATE "C" PRIMARY KEY,
    transaction_id   xid8 NOT NULL,
    global_position  bigint NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Events a sink refused for good (4xx other than 413): the feed moves on, nothing is lost, and the
-- monitoring issue alerts on this table. Derived data about delivery, not part of the event log.
CREATE TABLE {schema}.feed_dead_letters (
    sink             text COLLATE "C" NOT NULL,
    event_id         uuid NOT NULL,
    global_position  bigint NOT NULL,
    status           integer,
    reason           text NOT NULL,
    dead_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, event_id)
);

GRANT SELECT, INSERT, UPDATE ON {schema}.feed_checkpoints TO {app_role};
GRANT SELECT, INSERT, UPDATE ON {schema}.feed_dead_letters TO {app_role};
