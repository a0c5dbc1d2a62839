-- note: retention moves large payloads from the hot container to cold segments too: an index of those still hot.

-- A payload over the inline limit is kept in a blob of the tenant's hot container (`blob_ref` <container>/<sha>).
-- Past the cutoff the archiver seals it into a cold segment like any other; this index holds only those
-- still hot, so a run never walks the rows it moved before.
CREATE INDEX events_held_blobs ON {schema}.events (recorded_at, global_position)
    WHERE payload IS NULL AND blob_ref NOT LIKE 'cold:%' AND blob_ref NOT LIKE 'erased:%';

-- Whether any row still points at a hot blob (the same bytes appended twice share one): asked before the blob
-- of a payload sealed in a segment, or erased, is deleted.
CREATE INDEX events_hot_blob_refs ON {schema}.events (blob_ref)
    WHERE payload IS NULL AND blob_ref NOT LIKE 'cold:%' AND blob_ref NOT LIKE 'erased:%';
