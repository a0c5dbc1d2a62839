"""A real PgBouncer (Debian's `pgbouncer` package) in front of a PostgreSQL server, in transaction pooling
mode as Azure Database for PostgreSQL's built-in one on port 6432: the stand-in the pooled set-up is tested
against (tests/store/test_pgbouncer.py) and measured with (bench/pgbouncer.py).

PgBouncer refuses to run as root; when this process is root it runs as `nobody`, which must then reach the
server over TCP (a Unix socket directory of the server is usually not open to it)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from eventstore.store import conninfo_parts, conninfo_with

PGBOUNCER = "/usr/sbin/pgbouncer"


def pgbouncer_binary() -> str | None:
    """The pgbouncer program, or None when the Debian package is not installed (`./scripts/bootstrap` installs it)."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    return PGBOUNCER if Path(PGBOUNCER).exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """PgBouncer on 127.0.0.1 forwarding every database of `server_dsn`'s server (TCP), `pool_mode`
    transaction by default, with trust authentication for `users` (the server still checks them).

    `dsn(of)` turns a DSN of the server into the same login through the pooler."""

    def __init__(
        self,
        server_dsn: str,
        users: tuple[str, ...],
        *,
        pool_mode: str = "transaction",
        pool_size: int = 20,
        max_client_conn: int = 1000,
    ) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (Debian package pgbouncer; ./scripts/bootstrap installs it)")
        server = conninfo_parts(server_dsn)
        host = str(server.get("host") or "127.0.0.1")
        if host.startswith("/"):
            raise RuntimeError("PgBouncer reaches the server over TCP here: give a host and port, not a socket")
        self.port = _free_port()
        self._binary = binary
        self._dir = Path(tempfile.mkdtemp(prefix="eventstore-pgbouncer-"))
        (self._dir / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in users))
        (self._dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={server.get('port') or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self._dir / 'userlist.txt'}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = {max_client_conn}\n"
            # libpq and psycopg send these at start-up; PgBouncer refuses unknown start-up parameters.
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self._dir / 'pgbouncer.log'}\n"
        )
        if os.geteuid() == 0:  # the log and pid go here, written as nobody
            nobody = pwd.getpwnam("nobody")
            for path in (self._dir, *self._dir.iterdir()):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        as_root = os.geteuid() == 0
        self._process = subprocess.Popen(
            [self._binary, str(self._dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=(self._dir / "stderr.log").open("wb"),
            user="nobody" if as_root else None,
            group="nogroup" if as_root else None,
            extra_groups=[] if as_root else None,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited at start: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen within 10 s: {self.log_tail()}")

    def dsn(self, of: str) -> str:
        """`of`, a DSN of the server, through this pooler (same user, password and database)."""
        return conninfo_with(of, host="127.0.0.1", port=str(self.port))

    def log_tail(self, lines: int = 20) -> str:
        text = "".join(p.read_text() for p in (self._dir / "stderr.log", self._dir / "pgbouncer.log") if p.exists())
        return "\n".join(text.splitlines()[-lines:]) or "(no log)"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
