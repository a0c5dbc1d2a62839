"""What a benchmark run records about its conditions: the server's settings, and which code it measured."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parents[1]


def server_facts(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        facts: dict[str, Any] = {}
        for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers", "wal_sync_method"):
            row = conn.execute(f"SHOW {name}").fetchone()  # a constant setting name, not input
            facts[name] = row[0] if row else None
    params = conninfo_to_dict(dsn)
    facts["database"] = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
    return facts


def code_facts(*paths: str) -> dict[str, Any]:
    """Which store code was measured: the commit, uncommitted changes under `paths` (default eventstore/),
    and a hash of eventstore/'s sources."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "eventstore").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    facts: dict[str, Any] = {"eventstore_sha256": digest.hexdigest()[:16]}
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *(paths or ("eventstore",))],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return facts
    facts["git_head"] = head
    facts["eventstore_uncommitted"] = [line[3:] for line in dirty if line.strip()]
    return facts
