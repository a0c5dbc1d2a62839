-- note: an erasure finds an instance's received messages, and the payloads kept outside their rows, by index.

-- The received messages that name an instance (an erasure of the instance takes them too); without this the
-- lookup reads every event of the tenant.
CREATE INDEX events_audit_instance ON {schema}.events (workflow_instance_id) WHERE stream_id = 'audit';

-- The payloads kept in Blob or cold storage (a redaction of a value must read each JSON one in scope).
CREATE INDEX events_offloaded ON {schema}.events (global_position) WHERE payload IS NULL;
