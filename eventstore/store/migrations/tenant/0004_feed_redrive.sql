-- note: change feed redrive: a dead letter is stamped when a redrive delivers it, never deleted.

-- A dead letter stays as a record of the refusal; a redrive that the sink accepts stamps it instead of
-- deleting it, and a new refusal of the same event clears the stamp.
ALTER TABLE {schema}.feed_dead_letters ADD COLUMN redriven_at timestamptz;
