"""An embedded PostgreSQL (the `pgserver` wheel) for machines with no server configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class EmbeddedPostgres:
    """Starts (or reuses) a PostgreSQL server whose data lives in `data_dir`; `dsn` connects over TCP-less
    Unix sockets. `stop()` stops it unless another process still uses it."""

    def __init__(self, data_dir: Path) -> None:
        try:
            import pgserver
        except ImportError as exc:  # pragma: no cover - only without the [local] extra
            raise RuntimeError(
                "no EVENTSTORE_DATABASE_URL is set and the embedded PostgreSQL is not installed: "
                "pip install 'eventstore[local]'"
            ) from exc
        data_dir.mkdir(parents=True, exist_ok=True)
        self._server: Any = pgserver.get_server(data_dir, cleanup_mode="stop")
        self.dsn: str = self._server.get_uri()

    def stop(self) -> None:
        self._server.cleanup()
