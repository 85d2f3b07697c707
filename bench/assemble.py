"""Assemble-stage benchmark: the whole stage (guard, batched retrieval, candidates, prompts) on N sample cases,
against the baseline named in the issue measured in the same run: a naive loop of one BM25 query and one FAISS
query per record (same indexes, same guard), on a subset of records, extrapolated per record.

The stages before assemble run once (validate → codes → leakage, as pure functions; de-identification is left
out: it does not change what this stage does, only the text) and are kept in --work for later runs.

    python bench/assemble.py --n 113000          # the size of the published V17 training set
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import polars as pl

from datakit.assemble.examples import run_assemble
from datakit.assemble.retrieve import Bm25, build_pool
from datakit.codes.stage import run_codes
from datakit.keys import load_key
from datakit.leakage import embed
from datakit.leakage.guard import build_guard
from datakit.leakage.stage import run_leakage
from datakit.recipe import load_recipe
from datakit.rundir import STAGE_FILE, write_parts
from datakit.runner import StageContext
from datakit.schema import conform, validate
from datakit.sources.sample import generate_cases

ROOT = Path(__file__).resolve().parents[1]


def prepare(work: Path, n: int, recipe_path: Path) -> None:
    """stages/pull (validated sample cases) → stages/codes → stages/leakage in `work`, unless already there."""
    recipe = load_recipe(recipe_path, [f"source.n={n}"])
    if (work / "stages" / "leakage" / "_done").is_file():
        return
    shutil.rmtree(work / "stages", ignore_errors=True)
    cases = generate_cases(n, recipe.source.seed).cases  # type: ignore[union-attr]
    valid = validate(conform(cases), recipe.task, recipe.validation.review_status)
    write_parts(valid.cases, work / "stages" / "pull")
    (work / "stages" / "pull" / STAGE_FILE).write_text("{}")  # read_input wants a finished stage
    for name, run, source in (("codes", run_codes, "pull"), ("leakage", run_leakage, "codes")):
        out = work / "stages" / name
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        run(StageContext(recipe=recipe, run_dir=work, out_dir=out, input_stage=source))
        (out / STAGE_FILE).write_text("{}")
        print(f"prepared {name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    (work / "stages" / "leakage" / "_done").write_text("")


def naive_loop(work: Path, recipe_path: Path, n: int, sample: int) -> dict[str, float]:
    """One BM25 query + one FAISS query + the guard per record, in a Python loop (the same indexes)."""
    recipe = load_recipe(recipe_path, [f"source.n={n}"])
    cfg = recipe.assemble
    rows = pl.read_parquet(sorted((work / "stages" / "leakage").glob("part-*.parquet")))
    guard = build_guard(rows, recipe.leakage, load_key(recipe), work / "cache")
    pool = build_pool(guard)
    bm25 = Bm25(guard.texts.gather(pool.content), cfg.bm25_k1, cfg.bm25_b)
    index = embed.build_index(np.ascontiguousarray(guard.vectors[pool.content]), recipe.leakage.exact_index_max)
    nodes = np.random.default_rng(0).choice(guard.cases.height, size=min(sample, guard.cases.height), replace=False)
    bm25.search(guard.texts.gather([0]), cfg.k)  # compile numba before timing
    t0 = time.perf_counter()
    kept_total = 0
    for node in nodes.tolist():
        content = int(guard.content[node])
        hits = bm25.search(guard.texts.gather([content]), cfg.k)["pool"].to_list()
        _, ids = index.search(guard.vectors[content : content + 1], cfg.k)
        ranked = {p: 0.0 for p in hits}
        for rank, p in enumerate(hits):
            ranked[p] += 1 / (cfg.rrf_k + 1 + rank)
        for rank, p in enumerate(ids[0].tolist()):
            if p >= 0:
                ranked[p] = ranked.get(p, 0.0) + 1 / (cfg.rrf_k + 1 + rank)
        cands = np.array(sorted(ranked, key=lambda p: -ranked[p])[: cfg.k], dtype=np.int64)
        flags = guard.check(np.full(len(cands), node), pool.node[cands])
        kept_total += int((~flags["blocked"]).sum())
    per_record = (time.perf_counter() - t0) / len(nodes)
    return {"records_timed": len(nodes), "seconds_per_record": per_record, "records": guard.cases.height}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=113_000, help="sample cases")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "radiology-coding.toml")
    parser.add_argument("--work", type=Path, default=None, help="keep the prepared stages here between runs")
    parser.add_argument("--naive-sample", type=int, default=1000, help="records timed in the naive loop")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="datakit-bench-assemble-"))
    work.mkdir(parents=True, exist_ok=True)
    prepare(work, args.n, args.recipe)
    recipe = load_recipe(args.recipe, [f"source.n={args.n}"])
    out = work / "stages" / "assemble"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    result = run_assemble(StageContext(recipe=recipe, run_dir=work, out_dir=out, input_stage="leakage"))
    stage_s = time.perf_counter() - t0
    naive = naive_loop(work, args.recipe, args.n, args.naive_sample)
    stats = result.stats
    naive_s = naive["seconds_per_record"] * naive["records"]
    retrieval_s = stats["timings"]["retrieve_s"]
    summary = {
        "cases": args.n,
        "examples": result.rows_out,
        "stage_seconds": round(stage_s, 1),
        "examples_per_s": round(result.rows_out / stage_s, 1),
        "timings": stats["timings"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "blocked_retrievals": stats["blocked_retrievals"],
        "shots": stats["shots"],
        "candidates": {k: stats["candidates"][k] for k in ("cpt", "icd10")},
        "retrieval_rounds": stats["retrieval"]["rounds"],
        "naive_loop": {
            "records_timed": naive["records_timed"],
            "ms_per_record": round(naive["seconds_per_record"] * 1000, 2),
            "extrapolated_seconds_all_records": round(naive_s, 1),
        },
    }
    print(json.dumps(summary, indent=2))
    print(
        f"\nassemble on {args.n:,} cases ({result.rows_out:,} examples): {stage_s:.1f} s "
        f"({result.rows_out / stage_s:,.0f} examples/s); batched retrieval + guard {retrieval_s:.1f} s vs naive "
        f"per-record loop {naive_s:.1f} s (extrapolated from {naive['records_timed']:,} records) → "
        f"×{naive_s / max(retrieval_s, 1e-9):.1f}; blocked {stats['blocked_retrievals']['total']:,}, "
        f"mean shots {stats['shots']['mean_kept']}, candidate recall CPT {stats['candidates']['cpt']['recall']} "
        f"ICD {stats['candidates']['icd10']['recall']}"
    )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
