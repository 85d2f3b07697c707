"""The leakage stage: it wires detection (`detect.py` over the `layers/`), grouping and repair (`repair.py`), the
certificate (`certificate.py`) and the reports.

After the split the certificate re-checks every layer across train and eval with complete searches (joins for
keys, every LSH bucket pair, exact top-1 cosine of each eval text against all train texts, the words layer's
sparse product); a cross link found there is added to the graph and the groups and split are recomputed (at
most `REPAIR_ROUNDS` times). The build fails if any remains.

Outputs in `stages/leakage/`: the rows with `dedup_hash`, `leakage_group`, `group_links`, `group_size`, `split`,
`split_rule`, `look_alike`; `links.parquet` (case-id pairs, kind, score), `similarities.parquet` (content pairs
with their Jaccard/cosine down to the report floors, for re-applying thresholds; see `tables.py`), `groups.parquet`,
`certificate.json`, `leakage.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from datakit.content import sha256_hex
from datakit.errors import StageError
from datakit.keys import SecretKey, load_key
from datakit.leakage.detect import LayerClock, detect
from datakit.leakage.external import contamination, external_digest, read_items
from datakit.leakage.groups import group_links
from datakit.leakage.repair import REPAIR_ROUNDS, repair_moves, split_and_certify
from datakit.leakage.splits import EVAL_SPLITS, check_eval_splits, source_split_expr
from datakit.leakage.tables import write_links, write_similarities
from datakit.recipe import Leakage, Recipe
from datakit.rundir import CERTIFICATE, GROUPS, LEAKAGE_SUMMARY, LINKS, REPAIR_MOVES, SIMILARITIES, RunDir, file_sha256
from datakit.runner import StageContext, StageResult


def frozen_eval_files(path: str | None) -> list[Path]:
    """The leakage-stage parts (or shard index) of the earlier run named by `split.frozen_eval`; [] without one."""
    if path is None:
        return []
    earlier = RunDir(Path(path).expanduser())
    for c in (earlier.stage_dir("leakage"), earlier.shards / "_examples_index.parquet", earlier.root):
        files = (
            sorted(c.glob("part-*.parquet")) if c.is_dir() else ([c] if c.suffix == ".parquet" and c.is_file() else [])
        )
        if files:
            return files
    raise StageError(
        f"split.frozen_eval '{path}' holds neither stages/leakage/ nor shards/_examples_index.parquet of a datakit run"
    )


def frozen_eval_digest(files: list[Path]) -> str | None:
    """A fingerprint of the frozen eval set's files (part of the stage's config hash)."""
    return str(sha256_hex(pl.Series([",".join(file_sha256(f) for f in files)]))[0]) if files else None


def frozen_eval_table(files: list[Path]) -> pl.DataFrame | None:
    """(case_id, frozen_split) of the earlier run's val/test records."""
    if not files:
        return None
    return (
        pl.read_parquet(files, columns=["case_id", "split"])
        .filter(pl.col("split").is_in(EVAL_SPLITS))
        .group_by("case_id")
        .agg(pl.col("split").max().alias("frozen_split"))
    )


def source_split_table(rows: pl.DataFrame, recipe: Recipe) -> pl.DataFrame:
    """(case_id, frozen_split) of the records the source itself puts in val/test (`split.source_column`)."""
    column = recipe.split.source_column
    assert column is not None
    if column not in rows.columns:
        raise StageError(f"split.source_column '{column}' is not a column of the input: re-run the pull stage")
    return (
        rows.select("case_id", source_split_expr(recipe.split).alias("frozen_split"))
        .filter(pl.col("frozen_split").is_in(EVAL_SPLITS))
        .unique("case_id", keep="first", maintain_order=True)
    )


def source_split_moves(out: pl.DataFrame, recipe: Recipe) -> dict[str, dict[str, int]] | None:
    """Records per (source split -> datakit split): records the source calls train that a link ties to its
    val/test records are moved to eval, never the other way."""
    if recipe.split.source_column is None:
        return None
    counts = out.group_by(source_split_expr(recipe.split).alias("source"), "split").len().sort("source", "split")
    table: dict[str, dict[str, int]] = {}
    for source, split, n in counts.iter_rows():
        table.setdefault(str(source), {})[split] = n
    return table


def leakage_derived(recipe: Recipe) -> dict[str, Any]:
    """The key, the frozen and external eval sets' digests (`leakage`, `split` and `seed` are hashed)."""
    key = load_key(recipe)
    return {
        "key_id": key.key_id,
        "key_origin": "demo" if key.is_demo else key.origin.split(":")[0],
        "frozen_eval_digest": frozen_eval_digest(frozen_eval_files(recipe.split.frozen_eval)),
        "external_eval_digest": external_digest(recipe.leakage.external_eval),
    }


def run_leakage(ctx: StageContext) -> StageResult:
    recipe = ctx.recipe
    cfg = recipe.leakage
    key = ctx.key
    rows = ctx.read_input()
    rows_in = rows.height
    frozen = frozen_eval_table(frozen_eval_files(recipe.split.frozen_eval))
    if recipe.split.source_column is not None:
        frozen = source_split_table(rows, recipe)
    clock = LayerClock(phase=ctx.phase, advance=ctx.advance)
    rows, quarantine, external, pinned = decontaminate(rows, cfg, key, ctx.rundir.cache, clock)
    if pinned.height:  # policy "eval": contaminated cases (and their groups) go to test, like a frozen eval set
        frozen = (
            pl.concat([t for t in (frozen, pinned) if t is not None])
            .group_by("case_id")
            .agg(pl.col("frozen_split").max())
        )
    det = detect(rows, cfg, key, ctx.rundir.cache, clock, executor=ctx.executor)
    assigned, cert, extra, rounds = split_and_certify(det, recipe, frozen, clock)
    edges = pl.concat([det.edges, extra]) if extra.height else det.edges
    links = group_links(
        assigned.select("node", pl.col("leakage_group").alias("component")),
        edges,
    ).rename({"component": "leakage_group", "links": "group_links"})
    per_case = (
        assigned.join(det.nodes.select("node", "dedup_hash", "look_alike"), on="node")
        .join(links, on="leakage_group")
        .select(
            "case_id",
            "dedup_hash",
            "leakage_group",
            "group_links",
            pl.col("cases").alias("group_size"),
            "split",
            "split_rule",
            "look_alike",
        )
    )
    out = rows.drop([c for c in ("split", "split_group", "split_rule", "look_alike") if c in rows.columns]).join(
        per_case, on="case_id", how="left", maintain_order="left"
    )
    if out["split"].null_count():
        raise StageError("internal error: a row has no split after grouping")
    moves = repair_moves(assigned, extra)  # the records repair moved (to train): also why an eval split is empty
    check_eval_splits(out, recipe.split, frozen, moves.height)
    ctx.write(out)
    from datakit.report.build import leakage_summary  # the report module reads what this stage writes

    links = pl.concat([edges, det.template_edges])  # nodes: the tables below gather case ids chunk by chunk
    write_links(ctx.out_dir / LINKS, links, det.nodes.sort("node")["case_id"])
    moves.write_parquet(ctx.out_dir / REPAIR_MOVES)
    hashes = det.corpus.contents.sort("content")["dedup_hash"]
    write_similarities(ctx.out_dir / SIMILARITIES, det.similarities, hashes)
    groups = (
        out.group_by("leakage_group")
        .agg(
            pl.col("case_id").n_unique().alias("cases"),
            pl.len().alias("rows"),
            pl.col("split").first(),
            pl.col("group_links").first(),
            pl.col("patient_id").n_unique().alias("patients"),
        )
        .sort("leakage_group")
    )
    groups.write_parquet(ctx.out_dir / GROUPS)
    certificate = cert.to_json(out, recipe, key, det, rounds)
    if external is not None:
        certificate["external_eval"] = external
    by_source = source_split_moves(out, recipe)
    if by_source is not None:
        certificate["source_split"] = {
            "column": recipe.split.source_column,
            "records": by_source,
            "meaning": "records per (source's split -> split here): a source-train record linked to a source "
            "val/test record joins it in eval",
        }
    summary = leakage_summary(
        out=out,
        links=links,
        node_groups=assigned.select("node", "leakage_group"),
        similarities=det.similarities,
        groups=groups,
        certificate=certificate,
        moves=moves,
        layers=clock.layers,
        embedding=det.embedding,
        recipe=recipe,
        rows_in=rows_in,
    )
    if external is not None:
        summary["external_eval"] = external
    _write_json(ctx.out_dir / CERTIFICATE, certificate)
    _write_json(ctx.out_dir / LEAKAGE_SUMMARY, summary)
    if certificate["passed"] is False:
        from datakit.report.build import write_reports

        write_reports(ctx.run_dir, ctx.out_dir)
        failed = {k: v["train_eval_links"] for k, v in certificate["layers"].items() if v["train_eval_links"]}
        raise StageError(
            f"leakage certificate failed after {REPAIR_ROUNDS} repair rounds: train↔eval links remain {failed}; "
            f"see {ctx.run_dir / 'reports' / 'certificate.json'}"
        )
    stats = {
        "cases": det.nodes.height,
        "distinct_texts": len(det.texts),
        "links": summary["links"]["by_kind"],
        "groups": groups.height,
        "largest_group_cases": groups["cases"].max() or 0,
        "template_cases": int(det.nodes["template"].sum()),
        "rows_per_split": summary["splits"]["rows"],
        "split_rules": summary["splits"]["rules"],
        "certificate_passed": certificate["passed"],
        "repair_rounds": rounds,
        "layers": clock.layers,
        "embedding": det.embedding,
        "minhash_signatures": det.signatures_cached,
        "lsh_shuffle": det.lsh_shuffle,  # LSH map/reduce: tasks, partitions, rows and bytes handed over
        "key": certificate["key"],
    }
    if by_source is not None:
        stats["source_split"] = by_source
    if external is not None:
        stats["external_eval"] = {k: external[k] for k in ("contaminated_cases", "cases_by_layer", "cases_by_set")}
        stats["quarantine_reasons"] = (
            dict(quarantine["reason"].value_counts(sort=True).iter_rows()) if quarantine.height else {}
        )
    return StageResult(
        rows_in=rows_in, rows_out=out.height, quarantine=quarantine if quarantine.height else None, stats=stats
    )


def decontaminate(
    rows: pl.DataFrame, cfg: Leakage, key: SecretKey, cache_root: Path, clock: LayerClock
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any] | None, pl.DataFrame]:
    """(kept rows, quarantined rows with `reason`, the certificate's external_eval entry or None, the cases
    pinned to test: case_id, frozen_split)."""
    pinned = pl.DataFrame(schema={"case_id": pl.String, "frozen_split": pl.String})
    no_rows = rows.clear().with_columns(pl.lit(None, pl.String).alias("reason"))
    if not cfg.external_eval:
        return rows, no_rows, None, pinned
    clock.phase("external eval", None, "sets")
    with clock.layer("external_eval"):
        found = contamination(rows, read_items(cfg.external_eval), cfg, key, cache_root, clock)
    cases = found.cases()
    summary = found.summary(cfg.external_eval, cfg.external_ngram, cfg.external_policy)
    if cfg.external_policy == "eval":
        return rows, no_rows, summary, cases.select("case_id", pl.lit("test").alias("frozen_split"))
    quarantine = rows.join(cases.select("case_id", "reason"), on="case_id")
    kept = rows.join(cases.select("case_id"), on="case_id", how="anti")
    return kept, quarantine, summary, pinned


def _write_json(path: Path, data: dict[str, Any]) -> None:
    import json

    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
