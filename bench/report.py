"""Targets, ratios and the printed / JSON report of one run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.timing import median


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    rounds: list[float]

    @property
    def median(self) -> float:
        return median(self.rounds)


@dataclass(frozen=True)
class Target:
    """`store` / `baseline` (the median of the per-round ratios) must reach `minimum`; None: information."""

    name: str
    store: str
    baseline: str
    minimum: float | None


TARGETS = (
    Target("1 writer, 1 event/call: store / raw INSERT", "store.single_1w", "raw.single_1w", 0.8),
    Target("1 writer, 1 event/call: store / eventsourcing", "store.single_1w", "es.single_1w", 2.0),
    Target("1 event/call, new stream each: store / raw INSERT", "store.single_new_stream", "raw.single_1w", None),
    Target("4 writers, 1 event/call: store / raw INSERT x4", "store.single_4w", "raw.single_4w", 0.7),
    Target("4 writers, 1 event/call: store / eventsourcing x4", "store.single_4w", "es.single_4w", 3.0),
    Target("batch 10: store / raw VALUES(10)", "store.batch10", "raw.values10", None),
    Target("batch 100: store / raw VALUES(100)", "store.batch100", "raw.values100", 1.0),
    Target("batch 100: store / raw COPY(100)", "store.batch100", "raw.copy100", None),
    Target("batch 100: store / eventsourcing", "store.batch100", "es.batch100", None),
    Target("read stream: store / raw text read", "store.read_stream", "raw.read_stream", 0.8),
    Target("read stream: store / eventsourcing", "store.read_stream", "es.read_stream", None),
    Target("read all-stream: store / raw text read", "store.read_all", "raw.read_all", 0.8),
)


@dataclass(frozen=True)
class Ratio:
    target: Target
    per_round: list[float]

    @property
    def value(self) -> float:
        return median(self.per_round)

    @property
    def met(self) -> bool | None:
        return None if self.target.minimum is None else self.value >= self.target.minimum

    @property
    def verdict(self) -> str:
        met = self.met
        return "info" if met is None else ("met" if met else "MISSED")


def ratios(figures: dict[str, Figure]) -> list[Ratio]:
    out = []
    for target in TARGETS:
        store, baseline = figures.get(target.store), figures.get(target.baseline)
        if store is None or baseline is None:
            continue
        per_round = [s / b for s, b in zip(store.rounds, baseline.rounds, strict=True) if b > 0]
        if per_round:
            out.append(Ratio(target, per_round))
    return out


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def render(figures: dict[str, Figure], results: list[Ratio], meta: dict[str, Any]) -> str:
    lines = [
        f"PostgreSQL: {meta.get('server_version', '?')} ({meta.get('database', '?')}), "
        f"fsync={meta.get('fsync', '?')}, synchronous_commit={meta.get('synchronous_commit', '?')}; "
        f"{meta.get('cpus', '?')} CPUs; {meta['rounds']} rounds x {meta['seconds']} s per measurement",
        f"store code: {meta.get('git_head', '?')} + uncommitted {meta.get('eventstore_uncommitted', '?')} "
        f"(source hash {meta.get('eventstore_sha256', '?')}); load average {meta.get('load_average_at_start')}"
        f" at start, {meta.get('load_average_at_end')} at end",
        "",
        f"{'figure':<58} {'median':>12}   rounds",
    ]
    for figure in figures.values():
        rounds = ", ".join(f"{r:,.0f}" for r in figure.rounds)
        lines.append(f"{figure.label:<58} {_rate(figure.median):>12}   [{rounds}]")
    lines += ["", f"{'ratio (median of per-round ratios)':<58} {'value':>7} {'target':>7}  verdict"]
    for ratio in results:
        minimum = ratio.target.minimum
        shown = f">= {minimum:g}" if minimum is not None else "-"
        lines.append(f"{ratio.target.name:<58} {ratio.value:>7.2f} {shown:>7}  {ratio.verdict}")
    judged = [r for r in results if r.met is not None]
    missed = [r for r in judged if not r.met]
    lines += ["", f"targets met: {len(judged) - len(missed)}/{len(judged)}"]
    return "\n".join(lines)


def write_json(path: Path, figures: dict[str, Figure], results: list[Ratio], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "figures": {
            key: {"label": f.label, "events_per_second": f.median, "rounds": f.rounds} for key, f in figures.items()
        },
        "ratios": [
            {
                "name": r.target.name,
                "store": r.target.store,
                "baseline": r.target.baseline,
                "ratio": r.value,
                "per_round": r.per_round,
                "minimum": r.target.minimum,
                "met": r.met,
            }
            for r in results
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
