"""The change-feed benchmark runs end to end (tiny counts). It asserts what was measured, never how fast."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

ROOT = PROJECT_ROOT


def _number(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_bench_feed_quick_measures_drains_latencies_and_the_profile(database_url: str, tmp_path: Path) -> None:
    output = tmp_path / "feed.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.feed", "--quick", "--profile", "--dsn", database_url, "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads(output.read_text())

    drain = results["drain"]
    for key in ("store", "raw", "es"):
        assert _number(drain[key]["events_per_second"]), drain[key]
        assert len(drain[key]["rounds"]) == results["meta"]["rounds"]
        assert drain[key]["events"] == results["meta"]["events"]
    for name in ("store/raw", "store/es"):
        assert _number(drain["ratios"][name]["ratio"])

    for mode in ("nudge", "timer"):
        latency = results["latency"][mode]
        assert latency["appended"] > 0
        assert latency["arrived"] > 0
        for quantile in ("p50", "p99"):
            assert isinstance(latency["latency_seconds"][quantile], float)

    profile = results["profile"]
    for key in ("drain_unprofiled", "drain_sdk_client", "drain_sampled"):
        assert _number(profile[key]["rate"])
    assert sum(count for _, count in profile["drain_thread_samples"]) > 0
    assert {"read", "to_cloudevent", "encode", "eventgrid_sink", "sdk_sink", "requests"} <= set(
        profile["page_steps_us_per_event"]
    )
