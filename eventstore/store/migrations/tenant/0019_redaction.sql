-- note: redaction: the hash of a payload an erasure rewrote in place (selected JSON paths replaced by a marker).

-- `payload_sha256` stays the hash of what was received (the log still proves what arrived); a read of a
-- redacted payload verifies it against this one instead. `erasure_id` names the (latest) erasure that did it.
ALTER TABLE {schema}.events ADD COLUMN redacted_sha256 bytea
    CHECK (redacted_sha256 IS NULL OR octet_length(redacted_sha256) = 32);
