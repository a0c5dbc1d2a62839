"""Connection pools and the one place psycopg errors become `eventstore.errors`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from threading import Lock
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from eventstore.errors import AppendOnlyViolation, InvalidInput, StoreUnavailable
from eventstore.settings import Settings


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn the psycopg errors no caller can act on into this package's hierarchy."""
    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        message = exc.diag.message_primary or str(exc)
        if "append-only" in message:
            raise AppendOnlyViolation(message) from exc
        # Any other denial is a deployment problem (grants, role membership), not the caller's doing.
        raise StoreUnavailable(f"database permissions are misconfigured: {message}") from exc
    except psycopg.OperationalError as exc:
        if (exc.sqlstate or "").startswith("54"):
            # A program limit (too complex, too many arguments...): retrying the same request cannot help.
            raise InvalidInput(f"request exceeds a database limit: {exc.diag.message_primary}") from exc
        raise StoreUnavailable(f"database unavailable: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc


class Pools:
    """One application pool and one owner pool per named DSN, opened on first use.

    Application connections run as `settings.app_role` (SET ROLE on connect), which holds SELECT and
    INSERT only on the event tables; owner connections are for migrations and partition upkeep.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app: dict[str, ConnectionPool] = {}
        self._owner: dict[str, ConnectionPool] = {}
        self._lock = Lock()

    def app(self, dsn_name: str) -> ConnectionPool:
        pool = self._app.get(dsn_name)
        return pool if pool is not None else self._open(dsn_name, owner=False)

    def owner(self, dsn_name: str) -> ConnectionPool:
        pool = self._owner.get(dsn_name)
        return pool if pool is not None else self._open(dsn_name, owner=True)

    def _open(self, dsn_name: str, *, owner: bool) -> ConnectionPool:
        with self._lock:
            pools = self._owner if owner else self._app
            if dsn_name in pools:
                return pools[dsn_name]
            settings = self._settings
            conninfo = settings.dsn(dsn_name)
            if not owner and dsn_name == "default" and settings.app_database_url:
                conninfo = settings.app_database_url
            if not conninfo:
                raise StoreUnavailable(f"no database configured for DSN {dsn_name!r} (EVENTSTORE_DATABASE_URL)")
            role = settings.app_role

            def set_role(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))

            pool: ConnectionPool = ConnectionPool(
                conninfo,
                min_size=1 if owner else settings.pool_min_size,
                max_size=2 if owner else settings.pool_max_size,
                kwargs={"autocommit": True},
                configure=None if owner else set_role,
                name=f"eventstore-{'owner' if owner else 'app'}-{dsn_name}",
                open=False,
            )
            with translated_errors():
                pool.open(wait=True, timeout=30)
            pools[dsn_name] = pool
            return pool

    def close(self) -> None:
        with self._lock:
            for pool in [*self._app.values(), *self._owner.values()]:
                pool.close()
            self._app.clear()
            self._owner.clear()
