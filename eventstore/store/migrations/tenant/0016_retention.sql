-- note: retention: an archived payload's own data key (wrapped) in its row, and an index of the payloads still held.

-- The wrapped data key of a payload moved to a cold segment (store/cold_payloads.py): destroying it
-- crypto-shreds that payload in the segment (erasure), whatever tier the segment is in.
ALTER TABLE {schema}.events ADD COLUMN archive_key bytea;

-- The archiver takes the oldest payloads still held in the row; archived rows leave this index, so a run
-- never walks past the months it moved before.
CREATE INDEX events_held_payloads ON {schema}.events (recorded_at, global_position) WHERE payload IS NOT NULL;
