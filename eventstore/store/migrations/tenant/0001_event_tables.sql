-- note: streams, event ids, events partitioned by month, all-stream index, append-only triggers, grants.

-- One row per stream: its version (= last sequence number). The compare-and-set on this row is what
-- makes sequence numbers gapless under concurrency.
-- Stream ids compare byte-wise ("C"): prefix ranges and ordering then mean the same on every server,
-- whatever its default collation.
CREATE TABLE {schema}.streams (
    stream_id   text COLLATE "C" PRIMARY KEY,
    version     bigint NOT NULL CHECK (version > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Uniqueness of event ids cannot live on `events` (PostgreSQL wants the partition key in every unique
-- constraint), so it lives here; the row says where the event is, `events` holds the rest. Sequence
-- numbers need no unique index: the compare-and-set on `streams` hands each one out exactly once.
CREATE TABLE {schema}.event_ids (
    event_id         uuid PRIMARY KEY,
    stream_id        text COLLATE "C" NOT NULL,
    sequence_number  bigint NOT NULL
);

CREATE SEQUENCE {schema}.global_position_seq AS bigint;

CREATE TABLE {schema}.events (
    global_position       bigint NOT NULL,
    -- The writing transaction: all-stream readers order by (transaction_id, global_position) and stop
    -- at the oldest transaction still open, so an event that commits late is never skipped.
    transaction_id        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id             text COLLATE "C" NOT NULL,
    sequence_number       bigint NOT NULL CHECK (sequence_number > 0),
    event_id              uuid NOT NULL,
    event_type            text NOT NULL,
    -- The exact bytes received, and their hash; the JSONB copy below only serves queries, since JSONB
    -- reorders keys, drops duplicates and whitespace and cannot hold \u0000.
    payload               bytea,
    payload_sha256        bytea NOT NULL CHECK (octet_length(payload_sha256) = 32),
    payload_size          integer NOT NULL CHECK (payload_size >= 0),
    payload_json          jsonb,
    blob_ref              text,
    content_type          text NOT NULL,
    workflow_id           text,
    workflow_instance_id  text,
    user_id               text,
    correlation_id        text,
    causation_id          text,
    source_system         text,
    recorded_at           timestamptz NOT NULL,
    CHECK ((payload IS NULL) <> (blob_ref IS NULL))
) PARTITION BY RANGE (recorded_at);

CREATE INDEX events_stream_sequence ON {schema}.events (stream_id, sequence_number);
CREATE INDEX events_transaction_position ON {schema}.events (transaction_id, global_position);
CREATE INDEX events_recorded_at ON {schema}.events (recorded_at);
CREATE INDEX events_type_recorded_at ON {schema}.events (event_type, recorded_at);
CREATE INDEX events_workflow_recorded_at ON {schema}.events (workflow_id, recorded_at)
    WHERE workflow_id IS NOT NULL;
CREATE INDEX events_payload_json ON {schema}.events USING gin (payload_json jsonb_path_ops);

-- Append-only: the application role has no UPDATE/DELETE/TRUNCATE grant, and these triggers refuse
-- them for every other role too, unless the maintenance path set eventstore.maintenance for its
-- transaction (partition lifecycle, archival, erasure: each recorded as an event of its own).
CREATE FUNCTION {schema}.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('eventstore.maintenance', true), '') = 'on' THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        ELSIF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'eventstore: % on %.% refused: the event log is append-only',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege', HINT = 'changes go through the maintenance path';
END;
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {schema}.events
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change();
CREATE TRIGGER event_ids_append_only BEFORE UPDATE OR DELETE ON {schema}.event_ids
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_change();
CREATE TRIGGER event_ids_no_truncate BEFORE TRUNCATE ON {schema}.event_ids
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change();
-- Stream versions only move forward (each append hands out version+1..version+n, so a version that never
-- goes back can never hand out a sequence number twice), and streams are never renamed or deleted.
CREATE FUNCTION {schema}.guard_stream_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.stream_id IS DISTINCT FROM OLD.stream_id OR NEW.version <= OLD.version THEN
        IF coalesce(current_setting('eventstore.maintenance', true), '') = 'on' THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'eventstore: stream % may only move forward (version % to %): the event log is append-only',
            OLD.stream_id, OLD.version, NEW.version
            USING ERRCODE = 'insufficient_privilege', HINT = 'changes go through the maintenance path';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER streams_forward_only BEFORE UPDATE ON {schema}.streams
    FOR EACH ROW EXECUTE FUNCTION {schema}.guard_stream_version();
CREATE TRIGGER streams_no_delete BEFORE DELETE ON {schema}.streams
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_change();
CREATE TRIGGER streams_no_truncate BEFORE TRUNCATE ON {schema}.streams
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change();

-- Creates the month's partition of `events` (and its TRUNCATE guard: statement triggers are not
-- inherited by partitions). SECURITY DEFINER so the application role, which may not create tables,
-- can still turn a missing partition into a created one instead of an outage at a month boundary.
-- CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE on `events` and queue every writer behind
-- any open reader; a free-standing table then ATTACH PARTITION needs only SHARE UPDATE EXCLUSIVE.
CREATE FUNCTION {schema}.ensure_partition(p_at timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_month  timestamp := date_trunc('month', p_at AT TIME ZONE 'UTC');
    v_name   text := 'events_' || to_char(v_month, 'YYYY"m"MM');
BEGIN
    -- Serialise creators of this schema's partitions; the loser finds the table and returns.
    PERFORM pg_advisory_xact_lock(hashtextextended({schema_literal} || '.ensure_partition', 0));
    IF to_regclass(format('%I.%I', {schema_literal}, v_name)) IS NULL THEN
        SET LOCAL lock_timeout = '10s';
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       {schema_literal}, v_name, {schema_literal});
        EXECUTE format('ALTER TABLE %I.events ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       {schema_literal}, {schema_literal}, v_name,
                       v_month AT TIME ZONE 'UTC', (v_month + interval '1 month') AT TIME ZONE 'UTC');
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I.%I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION %I.refuse_change()',
                       v_name || '_no_truncate', {schema_literal}, v_name, {schema_literal});
    END IF;
    RETURN v_name;
END;
$$;

REVOKE ALL ON FUNCTION {schema}.ensure_partition(timestamptz) FROM PUBLIC;
GRANT USAGE ON SCHEMA {schema} TO {app_role};
GRANT SELECT, INSERT ON {schema}.events, {schema}.event_ids TO {app_role};
GRANT SELECT, INSERT, UPDATE ON {schema}.streams TO {app_role};
GRANT USAGE ON SEQUENCE {schema}.global_position_seq TO {app_role};
GRANT EXECUTE ON FUNCTION {schema}.ensure_partition(timestamptz) TO {app_role};
