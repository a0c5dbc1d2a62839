"""The benchmark runs end to end (tiny counts). It asserts what was measured, never how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

ROOT = PROJECT_ROOT


@pytest.mark.slow
def test_bench_quick_measures_every_workload_against_both_baselines(database_url: str, tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--dsn", database_url, "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads(output.read_text())
    figures = results["figures"]
    names = set(figures) if isinstance(figures, dict) else {f["key"] for f in figures}
    for key in (
        "store.single_1w",
        "raw.single_1w",
        "es.single_1w",
        "store.single_4w",
        "store.batch100",
        "raw.values100",
        "es.batch100",
        "store.read_stream",
        "raw.read_stream",
        "store.read_all",
    ):
        assert key in names
    targets = [r for r in results["ratios"] if r["minimum"] is not None]
    assert len(targets) == 7
    assert all(r["ratio"] > 0 for r in results["ratios"])
