"""The replay benchmark runs end to end (40 messages). It asserts what was measured, never how fast."""

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
def test_bench_replay_quick_measures_the_bulk_replay_beside_the_raw_loop(database_url: str, tmp_path: Path) -> None:
    output = tmp_path / "replay.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.replay", "--quick", "--dsn", database_url, "--output", str(output)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads(output.read_text())
    for key in ("raw_loop_per_second", "raw_16_threads_per_second", "replay_per_second", "ratio_replay_to_raw_loop"):
        assert _number(results[key]), results
    assert results["meta"]["messages"] == 40 and all(_number(m) for m in results["first_message_ms"])
