"""What grouping look-alike copies would cost: the frontier behind "look-alikes stay ungrouped".

Reads a harness run kept by `bench/leakage_quality.py --keep DIR` (its leakage output and truth.parquet), computes
the words layer's containment for *every* pair of distinct texts (O(n²): meant for the IU set's ~3,600 texts), and
for each near-verbatim rule (containment >= c and weight ratio >= r) prints what binding all such links would do:
the share of look-alike copies and of non-look-alike copies that end up in one cluster with their original, the
share of negative pairs (different patients' different reports) that would be merged, and the largest cluster (in
distinct texts). Today's rule binds none of these links between look-alike texts.

    python bench/leakage_quality.py --data iu --keep /tmp/lq && python bench/look_alike_frontier.py /tmp/lq/iu
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import polars as pl

from datakit.keys import DEMO_KEY, SecretKey
from datakit.leakage.corpus import build_corpus
from datakit.leakage.groups import connected_components
from datakit.leakage.layers import LayerClock
from datakit.leakage.layers.words import WordsLayer
from datakit.recipe import Leakage

RULES = [(c, r) for c in (0.8, 0.85, 0.9, 0.95) for r in (0.3, 0.6, 0.8)]


def all_pairs(layer: WordsLayer, n: int, floor: float) -> pl.DataFrame:
    """(a, b, containment, ratio) of every pair a < b with containment >= floor (one query row at a time)."""
    parts = []
    for i in range(n - 1):
        b = np.arange(i + 1, n)
        cont, ratio = layer.index.containment(np.full(len(b), i), b)
        keep = cont >= floor
        parts.append(
            pl.DataFrame(
                {
                    "a": np.full(keep.sum(), i, np.uint32),
                    "b": b[keep].astype(np.uint32),
                    "c": cont[keep],
                    "r": ratio[keep],
                }
            )
        )
    return pl.concat(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "run", type=Path, help="a data set's folder kept by leakage_quality.py --keep (e.g. /tmp/lq/iu)"
    )
    args = parser.parse_args()
    rows = pl.read_parquet(args.run / "run" / "stages" / "leakage" / "part-*.parquet")
    truth = pl.read_parquet(args.run / "truth.parquet")
    cfg = Leakage()
    with tempfile.TemporaryDirectory() as cache:
        corpus = build_corpus(rows.drop("look_alike"), cfg, SecretKey(DEMO_KEY, "demo"), Path(cache))
    layer = WordsLayer(cfg)
    layer.prepare(corpus, LayerClock())
    n = len(corpus.contents)
    if n > 20_000:
        sys.exit(f"{n} texts: the all-pairs scan is meant for the IU set (~3,600 texts)")
    pairs = all_pairs(layer, n, min(c for c, _ in RULES))
    content = corpus.cases.select("case_id", "content")
    flag = rows.unique("case_id").select("case_id", "look_alike")
    t = (
        truth.join(content.rename({"case_id": "case_a", "content": "ca"}), on="case_a")
        .join(content.rename({"case_id": "case_b", "content": "cb"}), on="case_b")
        .join(flag.rename({"case_id": "case_a", "look_alike": "la_a"}), on="case_a")
        .join(flag.rename({"case_id": "case_b", "look_alike": "la_b"}), on="case_b")
        .select(
            pl.when(pl.col("kind") == "negative").then(pl.lit("negative")).otherwise(pl.lit("copy")).alias("pair"),
            (pl.col("la_a") | pl.col("la_b")).alias("look_alike"),
            "ca",
            "cb",
        )
    )
    counts = {
        f"{p} (look-alike {la})": k
        for p, la, k in t.group_by("pair", "look_alike").len().sort("pair", "look_alike").iter_rows()
    }
    print(f"{n} distinct texts; pairs: {counts}")
    negative = (t["pair"] == "negative").to_numpy()
    out = []
    for c, r in RULES:
        comp = connected_components(n, pairs.filter((pl.col("c") >= c) & (pl.col("r") >= r)))["component"].to_numpy()
        same = comp[t["ca"].to_numpy()] == comp[t["cb"].to_numpy()]
        share = t.with_columns(pl.Series("same", same)).group_by("pair", "look_alike").agg(pl.col("same").mean())
        get = {(p, la): v for p, la, v in share.iter_rows()}
        out.append(
            {
                "containment": c,
                "ratio": r,
                "look_alike copies together": get.get(("copy", True)),
                "other copies together": get.get(("copy", False)),
                "negatives merged": float(same[negative].mean()) if negative.any() else None,
                "largest cluster (texts)": int(np.bincount(comp).max()),
            }
        )
    with pl.Config(tbl_rows=40, tbl_cols=10, tbl_width_chars=200, tbl_hide_dataframe_shape=True, float_precision=3):
        print(pl.DataFrame(out))


if __name__ == "__main__":
    main()
