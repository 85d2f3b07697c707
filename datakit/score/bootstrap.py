"""Point estimates and seeded 95% bootstrap intervals, per slice, for several systems scored on the same examples.

The bootstrap resamples examples (the classic bootstrap: each draw is n examples drawn with replacement, held as
per-example counts). One draw's statistic sums for every slice level, system and metric are one product of the
count vector with the statistics matrix, so 1,000 draws over 100,000 examples are a few matrix products, not a
loop over rows. Systems share the draws, so the interval of a difference between two systems is the paired
bootstrap: the same resampled examples for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from datakit.score.metrics import Metric, stat_matrix

CHUNK = 100  # draws per matrix product
ALL = "all"


@dataclass(frozen=True)
class System:
    name: str
    rows: pl.DataFrame  # scored rows, the same examples in the same order for every system


def draw_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """n_boot × n: how often each example appears in each draw (uint8: a draw repeats an example ~12 times at
    most at these sizes; checked)."""
    rng = np.random.default_rng(seed)
    counts = np.empty((n_boot, n), dtype=np.uint8)
    for b in range(n_boot):
        c = np.bincount(rng.integers(0, n, n), minlength=n)
        if c.max() > 255:
            raise ValueError("bootstrap counts overflow uint8")  # unreachable for n >= 2; kept honest
        counts[b] = c
    return counts


def _levels(facet: pl.Series) -> tuple[np.ndarray, list[str], list[tuple[int, int]]]:
    values = facet.fill_null("(none)").cast(pl.String).to_numpy()
    order = np.argsort(values, kind="stable")
    names, starts = np.unique(values[order], return_index=True)
    ends = [*starts[1:], len(values)]
    return order, [str(x) for x in names], list(zip(starts.tolist(), ends, strict=True))


def _interval(draws: np.ndarray) -> list[float | None]:
    finite = draws[np.isfinite(draws)]
    if finite.size < 0.9 * draws.size or finite.size == 0:
        return [None, None]
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def _value(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None


def estimate(
    systems: list[System],
    metrics: tuple[Metric, ...],
    facets: dict[str, pl.Series],
    n_boot: int,
    seed: int,
    deltas: list[tuple[str, str]],
) -> dict[str, Any]:
    """{facet: {level: {"n", "systems": {system: {metric: {value, ci}}}, "deltas": {"a-b": {metric: ...}}}}}.

    `facets` maps a facet name to one level per example (the rows of every system); `deltas` names pairs of
    systems whose paired difference is reported."""
    widths = [len(m.stats) for m in metrics]
    offsets = np.cumsum([0, *widths])
    per_system = int(offsets[-1])
    stats = np.hstack([stat_matrix(s.rows, metrics) for s in systems])
    n = stats.shape[0]
    counts = draw_counts(n, n_boot, seed) if n and n_boot else np.zeros((0, n), np.uint8)
    facets = {ALL: pl.Series([ALL] * n, dtype=pl.String), **facets}
    out: dict[str, Any] = {}
    for facet, series in facets.items():
        order, names, bounds = _levels(series)
        sorted_stats = stats[order]
        point = np.stack([sorted_stats[a:b].sum(axis=0) for a, b in bounds]) if bounds else np.zeros((0, 0))
        sums = np.zeros((counts.shape[0], len(bounds), stats.shape[1]), dtype=np.float64)
        stats32 = sorted_stats.astype(np.float32)
        for c0 in range(0, counts.shape[0], CHUNK):
            chunk = counts[c0 : c0 + CHUNK][:, order].astype(np.float32)
            for j, (a, b) in enumerate(bounds):
                sums[c0 : c0 + CHUNK, j] = chunk[:, a:b] @ stats32[a:b]
        values: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for s, system in enumerate(systems):
            values[system.name] = {}
            for k, metric in enumerate(metrics):
                lo, hi = s * per_system + offsets[k], s * per_system + offsets[k + 1]
                values[system.name][metric.name] = (
                    metric.finalise(point[:, lo:hi]),
                    metric.finalise(sums[:, :, lo:hi]),
                )
        levels: dict[str, Any] = {}
        for j, (name, (a, b)) in enumerate(zip(names, bounds, strict=True)):
            entry: dict[str, Any] = {"n": int(b - a), "systems": {}, "deltas": {}}
            for system in systems:
                entry["systems"][system.name] = {
                    m.name: {
                        "value": _value(values[system.name][m.name][0][j]),
                        "ci": _interval(values[system.name][m.name][1][:, j]),
                    }
                    for m in metrics
                }
            for first, second in deltas:
                entry["deltas"][f"{first}-{second}"] = {
                    m.name: {
                        "value": _value(values[first][m.name][0][j] - values[second][m.name][0][j]),
                        "ci": _interval(values[first][m.name][1][:, j] - values[second][m.name][1][:, j]),
                    }
                    for m in metrics
                }
            levels[name] = entry
        out[facet] = levels
    return out
