"""Retention: payloads past `EVENTSTORE_RETENTION_DAYS` moved to cold Blob segments through the maintenance path
(docs/retention.md)."""
