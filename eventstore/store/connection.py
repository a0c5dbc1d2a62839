"""Connection pools, bounded waits on the database, and the one place psycopg errors become
`eventstore.errors`.

Every wait on PostgreSQL is bounded by `EVENTSTORE_DEPENDENCY_TIMEOUT_SECONDS` (docs/reliability.md): a
request that cannot get a working connection in that time answers 503, it does not hang. Pooled
connections are checked when taken out of the pool, and a read (or an append the server provably
aborted) that loses its connection is tried once more on a fresh one, so the first request after a
database restart succeeds.
"""

from __future__ import annotations

import logging
import math
import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from threading import Lock
from time import monotonic
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from eventstore.errors import AppendOnlyViolation, InvalidInput, OwnerRequired, StoreUnavailable
from eventstore.settings import Settings

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")

# The server ended the session itself (admin or crash shutdown, starting up): whatever statement was in
# flight was aborted with its transaction, so nothing it did was committed and running it again is safe.
SERVER_ENDED_SESSION = frozenset({"57P01", "57P02", "57P03"})
_WAIT_SLICE = 0.5


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
    except psycopg.DataError as exc:
        # A value PostgreSQL cannot take (a NUL in text, a number out of range...). Input is checked, with
        # the parameter named, before it gets here; this is the net under those checks, so that a value
        # they missed is still the client's 400 and never a 500. Logged: it means a check is missing.
        log.warning("a data error reached the database (a missing input check?): %s", exc)
        raise InvalidInput(f"a value in the request cannot be stored or compared: {exc.diag.message_primary}") from exc
    except PoolTimeout as exc:
        raise StoreUnavailable(f"database unavailable: no working connection ({exc})") from exc
    except psycopg.OperationalError as exc:
        if (exc.sqlstate or "").startswith("54"):
            # A program limit (too complex, too many arguments...): retrying the same request cannot help.
            raise InvalidInput(f"request exceeds a database limit: {exc.diag.message_primary}") from exc
        raise StoreUnavailable(f"database unavailable: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc


def connect_options(conninfo: str, timeout: float) -> dict[str, Any]:
    """libpq options that bound each wait on the server, unless the DSN sets them itself.

    `connect_timeout` covers a server that accepts TCP and never answers (libpq's minimum is 2 s);
    keepalives and `tcp_user_timeout` make a connection to a host that vanished fail instead of hanging
    (they apply to TCP only, not to Unix sockets)."""
    seconds = max(2, math.ceil(timeout))
    wanted: dict[str, Any] = {
        "connect_timeout": seconds,
        "keepalives": 1,
        "keepalives_idle": seconds,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": seconds * 2000,
    }
    given = conninfo_to_dict(conninfo)
    return {key: value for key, value in wanted.items() if key not in given}


def is_dead(conn: Conn) -> bool:
    """Whether an idle pooled connection is already known to be unusable, without a round trip.

    An idle session has nothing to say: when its socket is readable, the server has ended it (a FATAL
    message, then the end of the stream, as after a restart or a failover) or sent something unasked.
    Either way a fresh connection is the safe choice; the FATAL may arrive before the end of the stream,
    so waiting for libpq to see the connection as closed would hand it out once more."""
    if conn.closed or conn.broken:
        return True
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class StorePool(ConnectionPool[Conn]):
    """A pool that never hands out a connection the server has already closed, and that reconnects as
    soon as a request waits for one.

    psycopg_pool's own `check` makes a round trip per checkout and sleeps with backoff (1 s, 2 s...)
    after each failed check, so a pool full of connections killed by a restart would take seconds to
    serve; here dead ones are dropped in microseconds and the pool replaces them. And the pool only
    starts connecting when a request joins its queue: a request that joined while the pool was giving
    up would wait out its whole timeout, so requests wait in slices, each of which asks again."""

    def getconn(self, timeout: float | None = None) -> Conn:
        wait = self.timeout if timeout is None else timeout
        deadline = monotonic() + wait
        while True:
            remaining = deadline - monotonic()
            try:
                conn = super().getconn(max(min(remaining, _WAIT_SLICE), 0.0))
            except PoolTimeout:
                if remaining <= _WAIT_SLICE:
                    raise PoolTimeout(f"no connection within {wait:g} s") from None
                continue
            if not is_dead(conn):
                return conn
            log.info("pool %s: dropping a connection the server closed", self.name)
            conn.close()
            self.putconn(conn)  # closed: the pool discards it and opens a replacement


def _retryable(exc: psycopg.OperationalError, conn: Conn, *, writes: bool) -> bool:
    if not conn.broken and not conn.closed:
        return False  # the server answered with an error: the connection is fine, the request is not
    if writes:
        # Lost without the server saying why, a COMMIT may have happened: the caller must decide
        # (idempotent appends make its own retry safe). An ended session proves nothing committed.
        return exc.sqlstate in SERVER_ENDED_SESSION
    return True


def run(pool: ConnectionPool[Conn], operation: Callable[[Conn], T], *, writes: bool = False) -> T:
    """`operation` on a pooled connection, tried once more on a fresh one when the first connection died
    under it and running it again is safe: always for reads, for writes only when the server ended the
    session (so the statement was aborted). Errors come out translated (`translated_errors`)."""
    # A loop, not tenacity: every append and read passes here, and a Retrying object costs ~40 µs a call
    # (5% of a single-event append); there is no backoff to configure, only one more attempt.
    with translated_errors():
        for attempt in (1, 2):
            with pool.connection() as conn:
                try:
                    return operation(conn)
                except psycopg.OperationalError as exc:
                    if attempt == 1 and _retryable(exc, conn, writes=writes):
                        log.warning("pool %s: connection lost (%s); trying once more", pool.name, exc)
                        continue
                    raise
    raise AssertionError("unreachable: the second attempt returns or raises")


def token_connection(get_token: Callable[[], str]) -> type[Conn]:
    """A connection class whose every new connection logs in with a fresh `get_token()` as its password
    (a Microsoft Entra token: the credential caches it and renews it before it expires, so a pool that
    reconnects after an hour gets a valid one, where a password fixed at start would have expired)."""

    class TokenConnection(psycopg.Connection[tuple[Any, ...]]):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> TokenConnection:
            return super().connect(conninfo, **{**kwargs, "password": get_token()})

    return TokenConnection


class Pools:
    """The connection pools of each named database, opened on first use:

    - `app`: every request. Runs as `settings.app_role` (SELECT and INSERT only on the event tables).
    - `session`: the readers' sessions (feed publishers, view runners), which hold a session-level advisory
      lock for the length of a run and read and write through the same connection. The `app` pool itself,
      unless the app's DSN goes through a transaction-pooling PgBouncer (`direct_database_url` set): a
      session lock taken through such a pooler belongs to whichever server connection ran that statement,
      so these connections go to the server directly.
    - `maintenance`: logs in as the application does (directly, when there is a pooler) and runs as
      `settings.maintenance_role`, the only role the append-only triggers let change stored events
      (archiving, erasure).
    - `owner`: migrations, onboarding, view rebuilds and compaction, from the command line; a deployment
      whose app has no owner DSN never opens it (`OwnerRequired`).

    Behind a transaction pooler each statement may run on another server connection, so the app pool
    neither switches role (its login's default role, `ALTER ROLE ... SET role`, is the application role:
    `eventstore db grant-login`) nor prepares statements on the server.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pools: dict[tuple[str, str], StorePool] = {}
        self._lock = Lock()
        self._token: Callable[[], str] | None = None
        if settings.database_auth == "entra":
            from eventstore.identity import database_token

            timeout = settings.dependency_timeout_seconds
            self._token = lambda: database_token(timeout)

    def app(self, dsn_name: str) -> StorePool:
        return self._pools.get(("app", dsn_name)) or self._open("app", dsn_name)

    def session(self, dsn_name: str) -> StorePool:
        if not self._settings.direct_dsn(dsn_name):
            return self.app(dsn_name)
        return self._pools.get(("session", dsn_name)) or self._open("session", dsn_name)

    def owner(self, dsn_name: str) -> StorePool:
        return self._pools.get(("owner", dsn_name)) or self._open("owner", dsn_name)

    def maintenance(self, dsn_name: str) -> StorePool:
        return self._pools.get(("maintenance", dsn_name)) or self._open("maintenance", dsn_name)

    def has_owner(self, dsn_name: str = "default") -> bool:
        """Whether this process holds the owner DSN of that database (the command line does; an app whose
        settings give it only its own login does not)."""
        return bool(self._settings.dsns.get(dsn_name) if dsn_name != "default" else self._settings.database_url)

    def pooled(self, dsn_name: str) -> bool:
        """Whether the app's DSN of that database goes through a transaction-pooling PgBouncer."""
        return bool(self._settings.direct_dsn(dsn_name))

    def _conninfo(self, kind: str, dsn_name: str) -> str:
        settings = self._settings
        owner = settings.dsn(dsn_name) if dsn_name == "default" or dsn_name in settings.dsns else ""
        if kind == "owner":
            if not owner:
                raise OwnerRequired(
                    f"this needs the owner DSN of database {dsn_name!r}, which this deployment's app does not "
                    "have: run it with the command line (`eventstore migrate`, `eventstore tenant onboard`)"
                )
            return owner
        if kind in ("session", "maintenance") and settings.direct_dsn(dsn_name):
            return settings.direct_dsn(dsn_name)
        conninfo = settings.app_dsn(dsn_name) or owner
        if not conninfo:
            raise StoreUnavailable(f"no database configured for DSN {dsn_name!r} (EVENTSTORE_DATABASE_URL)")
        return conninfo

    def _open(self, kind: str, dsn_name: str) -> StorePool:
        with self._lock:
            if (kind, dsn_name) in self._pools:
                return self._pools[(kind, dsn_name)]
            settings = self._settings
            conninfo = self._conninfo(kind, dsn_name)
            behind_pooler = kind == "app" and self.pooled(dsn_name)
            role = settings.maintenance_role if kind == "maintenance" else settings.app_role

            def set_role(conn: Conn) -> None:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))

            def check_role(conn: Conn) -> None:
                # A SET ROLE here would stay on one server connection of the pooler and leave the rest as
                # the login: the login must already run as the application role.
                row = conn.execute("SELECT current_user").fetchone()
                if not row or row[0] != role:
                    log.error(
                        "pool eventstore-app-%s: the login runs as %r, not as %r; behind a transaction pooler the "
                        "app's login needs that default role (eventstore db grant-login <login>)",
                        dsn_name, row[0] if row else None, role,
                    )  # fmt: skip
                    raise StoreUnavailable(f"the application login of {dsn_name!r} does not run as {role}")

            small = kind in ("owner", "maintenance")
            timeout = settings.dependency_timeout_seconds
            options: dict[str, Any] = {"autocommit": True, **connect_options(conninfo, timeout)}
            if behind_pooler:
                options["prepare_threshold"] = None  # a statement prepared on one server connection is
                # unknown to the next one the pooler picks
            pool = StorePool(
                conninfo,
                connection_class=self._token_class() if kind != "owner" and self._token else psycopg.Connection,
                min_size=1 if small else settings.pool_min_size,
                max_size=2 if small else settings.pool_max_size,
                kwargs=options,
                configure=None if kind == "owner" else check_role if behind_pooler else set_role,
                name=f"eventstore-{kind}-{dsn_name}",
                # How long a request waits for a connection before it answers 503.
                timeout=timeout,
                # How long the pool keeps retrying (1 s, 2 s... apart) before it waits for demand again:
                # short, so that once the database is back the next request connects within a second.
                reconnect_timeout=max(1.0, timeout / 2),
                open=False,
            )
            # Not `open(wait=True)`: that would hold this lock for up to the timeout while the database is
            # down, and each request behind it would wait its own timeout in turn (the k-th answering
            # after k timeouts). The pool connects in the background; a request waits for a connection
            # (`StorePool.getconn`) for the timeout at most, all of them at once.
            pool.open(wait=False)
            self._pools[(kind, dsn_name)] = pool
            return pool

    def _token_class(self) -> type[Conn]:
        assert self._token is not None
        return token_connection(self._token)

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
