"""Leakage-stage benchmark: the whole stage on N sample cases (wall time and peak RSS per layer), with the
baselines named in the issue measured in the same run on the same texts:

- MinHash: datasketch's per-document path (`MinHash.update` per shingle, then `MinHashLSH.insert`), and its
  `update_batch` per document, on a subset (extrapolated per document), against datakit's vectorised signatures
  (identical values: checked on that subset);
- embeddings: sentence-transformers on torch CPU (the full all-MiniLM-L6-v2) on a subset, against datakit's
  static path on all texts; agreement of the two on the planted-leak set when ../shared is present.

    python bench/leakage.py --n 113000            # the size of the published V17 training set
    python bench/leakage.py --n 113000 --gpu      # also the full model on the GPU (device machine)
    python bench/leakage.py --feed-only           # only the GPU loop's tokenising feed, on this machine's CPUs

The feed section times `TransformerEncoder.feed` (length-sorted batches of 2,048 tokenised by a thread pool, no
model) on the text the stage embeds for the real IU reports (the issue's reference text), with 1 thread and with
one per core: the rate at which the pipelined loop can hand batches to a GPU. A GPU fed slower than its model runs
(22K reports/s on an H100) is starved; the feed rate per core says how many cores a host needs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import polars as pl
from datasketch import MinHash, MinHashLSH

from datakit.evaluation.planted_leaks import iu_cases
from datakit.keys import DEMO_KEY, SecretKey
from datakit.leakage import embed, minhash
from datakit.leakage.corpus import content_text
from datakit.leakage.detect import LayerClock, detect
from datakit.leakage.repair import split_and_certify
from datakit.recipe import Leakage, load_recipe
from datakit.sources.sample import generate_cases

ROOT = Path(__file__).resolve().parents[1]
IU = ROOT.parent / "shared" / "real_data" / "indiana_iu_cxr" / "indiana_reports.csv"


def texts_of(cases: pl.DataFrame, cfg: Leakage) -> pl.Series:
    """The texts the stage compares, built by the stage's own expression."""
    return cases.unique("case_id").select(content_text(cfg.fields, cases.columns).alias("t"))["t"]


def datasketch_baseline(
    texts: list[str], k: int, num_perm: int, bands: int, rows: int
) -> tuple[float, float, np.ndarray]:
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
    t0 = time.perf_counter()
    sigs = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=1, hashfunc=minhash.shingle_hash, scheme="affine32")
        for s in minhash.shingles(text.encode(), k):
            m.update(s)
        lsh.insert(i, m)
        sigs.append(m.hashvalues)
    per_doc = (time.perf_counter() - t0) / len(texts)
    t0 = time.perf_counter()
    for text in texts:
        m = MinHash(num_perm=num_perm, seed=1, hashfunc=minhash.shingle_hash, scheme="affine32")
        m.update_batch(minhash.shingles(text.encode(), k))
    per_doc_batch = (time.perf_counter() - t0) / len(texts)
    return per_doc, per_doc_batch, np.array(sigs)


def iu_texts(n: int, cfg: Leakage) -> list[str] | None:
    """The text the stage embeds for the real IU reports (`iu_cases` of the planted-leak set, built by the stage's
    own expression), repeated up to n texts; None without ../shared."""
    if not IU.is_file():
        return None
    texts = texts_of(iu_cases(IU), cfg).to_list()
    return (texts * (n // len(texts) + 1))[:n]


def feed_rates(texts: list[str], model: str) -> dict[str, object]:
    """Reports/s of the pipelined loop's tokenising feed alone (no model), with 1 thread and one per core."""
    cores = os.cpu_count() or 1
    rates: dict[str, object] = {"texts": len(texts), "batch_size": 2048}
    for threads in sorted({1, cores}):
        enc = embed.TransformerEncoder(
            embed.resolve_model(model), device="cpu", batch_size=2048, tokenizer_threads=threads
        )
        for _ in enc.feed(texts[:4096]):  # warm-up
            pass
        t0 = time.perf_counter()
        for _ in enc.feed(texts):
            pass
        rates[f"threads_{threads}_reports_per_s"] = round(len(texts) / (time.perf_counter() - t0))
    rates["per_core_reports_per_s"] = round(rates[f"threads_{cores}_reports_per_s"] / cores)  # type: ignore[operator]
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=113_000)
    ap.add_argument("--baseline-docs", type=int, default=2000, help="documents the slow baselines run on")
    ap.add_argument("--gpu", action="store_true", help="also time the full model on CUDA")
    ap.add_argument("--feed-only", action="store_true", help="only time the GPU loop's tokenising feed")
    ap.add_argument("--feed-texts", type=int, default=40_000, help="texts the feed section tokenises")
    ap.add_argument(
        "--set", action="append", default=[], dest="sets", help="recipe override, e.g. leakage.words.enabled=true"
    )
    ap.add_argument("--stage-only", action="store_true", help="only the stage (no MinHash/embedding baselines)")
    args = ap.parse_args()
    recipe = load_recipe(ROOT / "recipes" / "radiology-coding.toml", [f"source.n={args.n}", *args.sets])
    cfg = recipe.leakage
    real = iu_texts(args.feed_texts, cfg)
    if args.feed_only:
        if real is None:
            sys.exit(f"the feed section runs on real IU text: {IU} is missing")
        print("feed", json.dumps(feed_rates(real, cfg.embedding.model)), flush=True)
        return
    t0 = time.perf_counter()
    cases = generate_cases(args.n, recipe.source.seed).cases  # type: ignore[union-attr]
    cases = cases.filter(pl.col("report_text").is_not_null() & pl.col("case_id").is_not_null())
    cases = cases.unique("case_id", keep="first")
    print(f"{cases.height:,} sample cases generated in {time.perf_counter() - t0:.1f} s", flush=True)

    results: dict[str, object] = {"n": cases.height, "cpu_cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as cache:
        clock = LayerClock()
        t0 = time.perf_counter()
        det = detect(cases, cfg, SecretKey(DEMO_KEY, "demo"), Path(cache), clock)
        assigned, cert, _, rounds = split_and_certify(det, recipe, None, clock)
        total = time.perf_counter() - t0
    results["layers"] = clock.layers
    results["stage_seconds_excluding_io"] = round(total, 1)
    results["distinct_texts"] = len(det.texts)
    results["links"] = dict(det.edges.group_by("kind").len().sort("kind").iter_rows())
    results["certificate_repair_rounds"] = rounds
    results["certificate_passed"] = cert.cross_link_total == 0
    results["template_cases"] = int(det.nodes["template"].sum())
    sizes = assigned.group_by("leakage_group").len()["len"]
    results["groups"] = {
        "count": sizes.len(),
        "largest": int(sizes.max()),  # type: ignore[arg-type]
        "records_in_groups_over_100": int(sizes.filter(sizes > 100).sum()),
        "split_records": dict(assigned.group_by("split").len().sort("split").iter_rows()),
    }
    results["embedding"] = det.embedding
    print(json.dumps(results, indent=2), flush=True)
    if args.stage_only:
        return

    # MinHash: datakit on all texts vs datasketch per-document on a subset
    texts = texts_of(cases, cfg)
    t0 = time.perf_counter()
    ours = minhash.signatures(texts, k=cfg.minhash.k, num_perm=cfg.minhash.num_perm)
    table = minhash.band_table(ours, cfg.minhash.bands, cfg.minhash.rows, np.arange(len(ours), dtype=np.uint32))
    minhash.candidate_pairs(table, cfg.minhash.max_bucket)
    ours_s = time.perf_counter() - t0
    sub = texts.head(args.baseline_docs).to_list()
    per_doc, per_doc_batch, ref = datasketch_baseline(
        sub, cfg.minhash.k, cfg.minhash.num_perm, cfg.minhash.bands, cfg.minhash.rows
    )
    assert np.array_equal(ref, ours[: len(sub)]), "signatures differ from datasketch's"
    mh = {
        "datakit_docs_per_s": round(len(texts) / ours_s),
        "datasketch_update_plus_lsh_docs_per_s": round(1 / per_doc),
        "datasketch_update_batch_docs_per_s": round(1 / per_doc_batch),
        "speedup_vs_update": round(per_doc * len(texts) / ours_s, 1),
        "speedup_vs_update_batch": round(per_doc_batch * len(texts) / ours_s, 1),
        "signatures_identical_on_subset": True,
    }
    print("minhash", json.dumps(mh), flush=True)

    # embeddings: static (datakit default) vs the full model on torch CPU
    raw = texts.to_list()
    static = embed.make_encoder("static", cfg.embedding.model)
    t0 = time.perf_counter()
    static.encode(raw)
    static_rate = len(raw) / (time.perf_counter() - t0)
    full = embed.make_encoder("sentence-transformers", cfg.embedding.model, device="cpu", batch_size=64)
    sub_n = min(len(raw), max(200, args.baseline_docs // 4))
    t0 = time.perf_counter()
    full.encode(raw[:sub_n])
    full_rate = sub_n / (time.perf_counter() - t0)
    emb = {
        "static_reports_per_s": round(static_rate),
        "sentence_transformers_cpu_reports_per_s": round(full_rate, 1),
        "speedup": round(static_rate / full_rate, 1),
    }
    if real is not None:
        emb["feed"] = feed_rates(real, cfg.embedding.model)
    if args.gpu:
        import torch

        if torch.cuda.is_available():
            source = embed.resolve_model(cfg.embedding.model)
            gpu_texts = iu_texts(len(raw), cfg)
            emb["gpu_texts"] = "IU reports" if gpu_texts else "sample cases"
            gpu_texts = gpu_texts or raw
            for name, piped in (("plain_encode", False), ("pipelined", True)):
                gpu = embed.TransformerEncoder(source, device="cuda", batch_size=2048, pipelined=piped)
                gpu.encode(gpu_texts[:4096])  # warm-up: CUDA context, kernels
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                gpu.encode(gpu_texts)
                emb[f"gpu_{name}_reports_per_s"] = round(len(gpu_texts) / (time.perf_counter() - t0))
    print("embedding", json.dumps(emb), flush=True)
    print(f"peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    print(
        f"\nSUMMARY n={cases.height:,}: stage {total:.0f} s (target < 600 s); MinHash x{mh['speedup_vs_update']} vs "
        f"datasketch update (target >= 10x), x{mh['speedup_vs_update_batch']} vs update_batch; embeddings "
        f"{emb['static_reports_per_s']:,}/s static vs {emb['sentence_transformers_cpu_reports_per_s']}/s "
        "full model on CPU (target >= 1,000/s)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
