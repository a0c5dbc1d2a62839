"""Settings for local runs: the configured database, or an embedded PostgreSQL started on demand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eventstore.settings import Settings
from eventstore_local.settings import LocalSettings


def local_dir() -> Path:
    configured = LocalSettings().local_dir
    return (Path(".local") if configured is None else configured).resolve()


@contextmanager
def local_settings(say: bool = True) -> Iterator[Settings]:
    """`Settings()` from the environment; when no database is configured, one embedded in `.local/`."""
    settings = Settings()
    if settings.database_url:
        yield settings
        return
    from eventstore_local.standins.postgres import EmbeddedPostgres

    data_dir = local_dir() / "pgdata"
    if say:
        print(f"no EVENTSTORE_DATABASE_URL: starting embedded PostgreSQL in {data_dir}", flush=True)
    server = EmbeddedPostgres(data_dir)
    try:
        yield settings.model_copy(update={"database_url": server.dsn})
    finally:
        server.stop()
