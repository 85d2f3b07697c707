"""Sources: where cases come from. Each returns a frame whose columns carry case-schema names."""

from __future__ import annotations

import polars as pl

from datakit.recipe import FilesSource, SampleSource


def read_source(cfg: SampleSource | FilesSource, extra: tuple[str, ...] = ()) -> pl.DataFrame:
    if isinstance(cfg, SampleSource):
        from datakit.sources.sample import generate_cases

        return generate_cases(n=cfg.n, seed=cfg.seed).cases
    from datakit.sources.files import read_files

    return read_files(cfg, extra)
