"""An embedded PostgreSQL (the `pgserver` wheel) for machines with no server configured."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from eventstore_local.settings import LocalSettings


class EmbeddedPostgres:
    """Starts (or reuses) a PostgreSQL server whose data lives in `data_dir`; `dsn` connects over TCP-less
    Unix sockets. `stop()` stops it unless another process still uses it."""

    def __init__(self, data_dir: Path) -> None:
        try:
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver only needs a
            # writable directory, which it gets either way.
            if LocalSettings().xdg_runtime_dir is None:
                runtime = Path(tempfile.gettempdir()) / f"eventstore-runtime-{os.getuid()}"
                runtime.mkdir(mode=0o700, exist_ok=True)
                os.environ["XDG_RUNTIME_DIR"] = str(runtime)  # for pgserver and the servers it starts
            import pgserver
        except ImportError as exc:  # pragma: no cover - only without the [local] extra
            raise RuntimeError(
                "no EVENTSTORE_DATABASE_URL is set and the embedded PostgreSQL is not installed: "
                "pip install 'eventstore[local]'"
            ) from exc
        # pgserver logs every pg_ctl call at INFO; only its problems are worth a line on a terminal.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        data_dir.mkdir(parents=True, exist_ok=True)
        self._server: Any = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
        self.dsn: str = self._server.get_uri()

    def stop(self) -> None:
        self._server.cleanup()
