"""A metric as the scorer computes it: per-example statistics that add up, and a function of their sums.

A mean metric's statistics are (value × valid, valid); corpus BLEU's are sacrebleu's per-sentence n-gram counts.
Sums make slices and bootstrap draws one matrix product (see `bootstrap.py`), whatever the metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    stats: tuple[pl.Expr, ...]  # per-example statistics (floats) computed from a scored rows frame
    finalise: Callable[[np.ndarray], np.ndarray]  # sums (..., len(stats)) -> metric value (...), NaN if undefined
    lower_is_better: bool = False


def _ratio(sums: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums[..., 1] > 0, sums[..., 0] / np.maximum(sums[..., 1], 1e-300), np.nan)


def mean_metric(name: str, label: str, valid: str | None = None, lower_is_better: bool = False) -> Metric:
    """The mean of column `name` over the rows where boolean column `valid` holds (all rows when None)."""
    weight = pl.col(valid).cast(pl.Float64) if valid else pl.lit(1.0)
    return Metric(name, label, (pl.col(name).cast(pl.Float64) * weight, weight), _ratio, lower_is_better)


def stat_matrix(rows: pl.DataFrame, metrics: tuple[Metric, ...]) -> np.ndarray:
    """n × (sum of len(stats)) float64, metrics' statistics side by side in order."""
    exprs = [expr.fill_null(0.0).alias(f"_s{i}") for i, expr in enumerate(e for m in metrics for e in m.stats)]
    return rows.select(exprs).to_numpy().astype(np.float64)
