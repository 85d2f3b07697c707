"""The leakage layers' work on Ray computes what the local engine computes, on real report text (IU chest X-ray
reports, distinct texts): MinHash signatures from actors, LSH candidate pairs from the (band, bucket) shuffle
(also with many partitions and template-sized buckets linked as stars), embeddings from actors, FAISS neighbours
from parallel query batches (exact and IVF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datakit.executor import executor_for
from datakit.leakage import embed, minhash, workers
from datakit.leakage.layers import LayerClock
from datakit.leakage.layers import near as near_layer
from datakit.leakage.layers.near import JACCARD_FLOOR, NearLayer
from datakit.leakage.workers import make_encoder
from datakit.recipe import Engine, Leakage, MinHashConfig

pytest.importorskip("ray")
ENGINE = Engine(kind="ray", batch_size=500)


@pytest.fixture(scope="module")
def texts(real_data: Path) -> pl.Series:
    reports = pl.read_csv(real_data / "indiana_iu_cxr" / "indiana_reports.csv")
    joined = pl.concat_str(pl.col("findings").fill_null(""), pl.col("impression").fill_null(""), separator=" ")
    return reports.select(joined.str.to_lowercase().alias("text"))["text"].unique(maintain_order=True)


def _pairs(layer: NearLayer) -> pl.DataFrame:
    return layer.verified_pairs(LayerClock()).unique(["a", "b"], keep="first").sort("a", "b")


def test_signatures_and_lsh_pairs_on_ray(local_ray: None, texts: pl.Series, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = executor_for(ENGINE)
    cfg = MinHashConfig(max_bucket=20)  # IU's normal-study buckets are larger: linked as stars
    sig = minhash.signatures(texts, k=cfg.k, num_perm=cfg.num_perm)
    remote = workers.signatures(cluster, texts, k=cfg.k, num_perm=cfg.num_perm)
    assert np.array_equal(remote, sig)
    here, there = NearLayer(cfg), NearLayer(cfg, cluster)
    for layer in (here, there):
        layer.signatures, layer.sizes = sig, minhash.shingle_counts(texts, cfg.k)
    expected = _pairs(here)
    monkeypatch.setattr(near_layer, "PARTITION_ROWS", 15_000)  # ~7 reduce partitions instead of one per CPU
    assert _pairs(there).equals(expected)
    stats = there.lsh_stats
    rows = len(texts) * cfg.bands
    assert stats["partitions"] == -(-rows // 15_000) > 2 and stats["shuffled_rows"] == rows
    assert stats["shuffled_bytes"] > 0 and stats["pairs_returned"] <= stats["candidate_pairs"]
    assert expected["linked"].sum() > 100  # IU repeats itself: the comparison is not over an empty set
    assert expected["jaccard"].filter(~expected["linked"]).min() >= JACCARD_FLOOR  # type: ignore[operator]


def test_embeddings_and_neighbours_on_ray(local_ray: None, texts: pl.Series) -> None:
    cluster = executor_for(ENGINE)
    cfg = Leakage()
    vectors = make_encoder(cfg).encode(texts.to_list())
    remote = workers.PooledEncoder(cfg, cluster)
    assert remote.model_id == make_encoder(cfg).model_id
    assert np.array_equal(remote.encode(texts.to_list()), vectors)
    centred = embed.centred(vectors)
    search = workers.neighbour_search(cluster)
    for exact_max in (1_000_000, 1_000):  # exact, then IVF
        expected = embed.neighbour_pairs(centred, 10, 0.8, exact_max, batch=700)
        assert expected.height > 1000
        assert embed.neighbour_pairs(centred, 10, 0.8, exact_max, batch=700, search=search).equals(expected)
