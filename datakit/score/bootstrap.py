"""Point estimates and seeded 95% bootstrap intervals, per slice, for several systems scored on the same examples.

The bootstrap resamples examples (the classic bootstrap: each draw is n examples drawn with replacement, held as
per-example counts). One draw's statistic sums for every slice level, system and metric are one product of the
count vector with the statistics matrix, so 1,000 draws over 100,000 examples are a few matrix products, not a
loop over rows. Systems share the draws, so the interval of a difference between two systems is the paired
bootstrap: the same resampled examples for both.

Each facet reads the count matrix in its own order of examples (sorted by level, so a level is a contiguous
block): a uniform draw relabelled by a fixed permutation is still a uniform draw, so every facet's intervals are a
valid bootstrap, without copying 10^8 counts into each facet's order. (Draws are therefore not shared between
facets; nothing compares two facets' draws.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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


def draw_chunks(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """The draws, CHUNK at a time: rows × n float32, how often each example appears in each draw. Seeded: the
    same (n, n_boot, seed) gives the same draws."""
    rng = np.random.default_rng(seed)
    for c0 in range(0, n_boot, CHUNK):
        chunk = np.empty((min(CHUNK, n_boot - c0), n), dtype=np.float32)
        for row in chunk:
            row[:] = np.bincount(rng.integers(0, n, n), minlength=n)
        yield chunk


def _levels(facet: pl.Series) -> tuple[np.ndarray, list[str], list[tuple[int, int]]]:
    """The facet's order of examples (by level, then position) and each level's name and block in that order."""
    frame = pl.DataFrame({"v": facet.fill_null("(none)").cast(pl.String)}).with_row_index("i").sort("v", "i")
    runs = frame.select(pl.col("v").rle()).unnest("v")
    ends = runs["len"].cum_sum().to_list()
    starts = [0, *ends[:-1]]
    return frame["i"].to_numpy(), runs["value"].to_list(), list(zip(starts, ends, strict=True))


def _distinct_columns(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the distinct columns, index of each column among them): metrics share weight columns."""
    seen: dict[bytes, int] = {}
    keep: list[int] = []
    where: list[int] = []
    for k in range(stats.shape[1]):
        key = hashlib.sha256(np.ascontiguousarray(stats[:, k]).tobytes()).digest()
        if key not in seen:
            seen[key] = len(keep)
            keep.append(k)
        where.append(seen[key])
    return np.asarray(keep, dtype=np.int64), np.asarray(where, dtype=np.int64)


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
    keep, where = _distinct_columns(stats)
    facets = {ALL: pl.Series([ALL] * n, dtype=pl.String), **facets}
    layout = {name: _levels(series) for name, series in facets.items()}
    distinct = stats[:, keep].astype(np.float32)
    blocks = {name: distinct[order] for name, (order, _, _) in layout.items()}
    sums = {name: np.zeros((n_boot, len(bounds), len(keep))) for name, (_, _, bounds) in layout.items()}
    c0 = 0
    for chunk in draw_chunks(n, n_boot if n else 0, seed):
        for name, (_, _, bounds) in layout.items():
            for j, (a, b) in enumerate(bounds):
                sums[name][c0 : c0 + len(chunk), j] = chunk[:, a:b] @ blocks[name][a:b]
        c0 += len(chunk)
    out: dict[str, Any] = {}
    for facet, (order, names, bounds) in layout.items():
        sorted_stats = stats[order]
        point = np.stack([sorted_stats[a:b].sum(axis=0) for a, b in bounds]) if bounds else np.zeros((0, 0))
        drawn = sums[facet][:, :, where]  # back to one column per statistic
        values: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for s, system in enumerate(systems):
            values[system.name] = {}
            for k, metric in enumerate(metrics):
                lo, hi = s * per_system + offsets[k], s * per_system + offsets[k + 1]
                values[system.name][metric.name] = (
                    metric.finalise(point[:, lo:hi]),
                    metric.finalise(drawn[:, :, lo:hi]),
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
