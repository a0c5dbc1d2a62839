"""Throughput benchmark of the event store against a raw psycopg table and eventsourcing 9.5.6.

Run with `python -m bench [--dsn DSN] [--quick] [--seconds N]`; see `bench.__main__`.
"""
