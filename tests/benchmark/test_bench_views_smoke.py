"""The views benchmark runs end to end (tiny counts). It asserts what was measured, never how fast."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT


def _number(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_bench_views_quick_measures_catch_up_lag_and_pages(database_url: str, tmp_path: Path) -> None:
    output = tmp_path / "views.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.views", "--quick", "--dsn", database_url, "--output", str(output)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads(output.read_text())
    catch = results["catch_up"]
    for key in ("feed_events_per_second", "views_events_per_second", "ratio_views_to_feed"):
        assert _number(catch[key]), catch
    lag = results["lag"]
    assert lag["appends"] > 0 and lag["missing"] == 0 and _number(lag["p99_ms"])
    assert [p["instances"] for p in results["pages"]] and all(
        _number(p["view_ms"]) and _number(p["fold_ms"]) for p in results["pages"]
    )
