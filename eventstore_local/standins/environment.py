"""Settings for local runs: the configured database, or an embedded PostgreSQL started on demand."""

from __future__ import annotations

import os
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


def local_archive_key() -> dict[str, str]:
    """The app settings that give a local run an archive key (retention seals archived payloads with it): none
    when one is configured; else a key file in `.local/keys/`, made once (readable by this user alone). Lose
    it and the payloads archived with it cannot be read: in Azure the key is a Key Vault secret."""
    from eventstore.store import ArchiveKeys

    settings = Settings()
    if settings.archive_key is not None or settings.archive_key_file:
        return {}
    path = local_dir() / "keys" / "archive.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(path, "x", opener=lambda name, flags: os.open(name, flags, 0o600)) as file:
            file.write(ArchiveKeys.new_key_text() + "\n")
    return {"EVENTSTORE_ARCHIVE_KEY_FILE": str(path)}
