-- note: the maintenance path is a role: only it passes the append-only triggers (the old setting no longer does).

-- Before: a transaction that set eventstore.maintenance passed the triggers, and any role may set a setting.
-- Now the triggers let through only statements run as the maintenance role (SET ROLE to it): a role the
-- application role is not a member of, so the application cannot change stored events whatever it sets.
-- Even the owner must take the role on purpose. What the maintenance path does is recorded as events of the
-- tenant's `maintenance` stream, in the same transaction as the change.
CREATE OR REPLACE FUNCTION {schema}.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_user = {maintenance_role_literal} THEN
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

CREATE OR REPLACE FUNCTION {schema}.guard_stream_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.stream_id IS DISTINCT FROM OLD.stream_id OR NEW.version <= OLD.version THEN
        IF current_user = {maintenance_role_literal} THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'eventstore: stream % may only move forward (version % to %): the event log is append-only',
            OLD.stream_id, OLD.version, NEW.version
            USING ERRCODE = 'insufficient_privilege', HINT = 'changes go through the maintenance path';
    END IF;
    RETURN NEW;
END;
$$;

-- What the maintenance path may touch: the events (to clear an archived or erased payload and keep the
-- reference), and what recording its own events in the maintenance stream takes.
GRANT USAGE ON SCHEMA {schema} TO {maintenance_role};
GRANT SELECT, INSERT, UPDATE ON {schema}.events TO {maintenance_role};
GRANT SELECT, INSERT ON {schema}.event_ids TO {maintenance_role};
GRANT SELECT, INSERT, UPDATE ON {schema}.streams TO {maintenance_role};
GRANT USAGE ON SEQUENCE {schema}.global_position_seq TO {maintenance_role};
GRANT EXECUTE ON FUNCTION {schema}.ensure_partition(timestamptz) TO {maintenance_role};
