"""The `assemble` stage: one training example per input row, with retrieved few-shot examples, candidate code
lists and the report in an explicit or embedded format.

Retrieval (`retrieve.py`) draws from the train split only and passes every candidate through the leakage
guard (`datakit.leakage.guard`); what it blocked is counted per layer in `_stage.json` (`blocked_retrievals`)
and shown in the leakage report. Shots are dropped, last first, to keep each prompt within
`assemble.max_prompt_tokens`; the report itself is never cut and no record is dropped (a prompt that is over
the budget even without shots is kept, tagged `over_token_budget` and counted).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import polars as pl

from datakit.assemble.candidates import gold_hits, recall, voted_codes, with_unspecified
from datakit.assemble.formats import answer_line_expr
from datakit.assemble.prompt import (
    chunk_tokens,
    shot_expr,
    system_message,
    token_estimate,
    user_message_expr,
    with_messages,
)
from datakit.assemble.retrieve import Retrieval, retrieve
from datakit.content import content_hash, sha256_hex
from datakit.keys import load_key
from datakit.leakage.guard import LAYERS, Guard, build_guard
from datakit.recipe import Recipe
from datakit.rundir import BLOCKED_RETRIEVALS
from datakit.runner import StageContext, StageResult
from datakit.task import TaskSpec, section_tags, spec_of

EXAMPLE_COLUMNS = (
    "example_id",
    "case_id",
    "split",
    "prompt",
    "completion",
    "sample_weight",
    "n_prompt_tokens",
    "n_completion_tokens",
    "tags",
    "case_content_hash",
    "pair_of",
    "from_code",
    "to_code",
    "pair_kind",
    "prompt_format",
    "n_shots",
    "shot_case_ids",
    "cpt_candidates",
    "icd_candidates",
    "cpt_gold_in_candidates",
    "icd_gold_in_candidates",
)
PAIR_COLUMNS = ("pair_of", "from_code", "to_code", "pair_kind")
SHOT_FIELDS = ("exam_description", "reason_for_exam", "report_text")  # what a coding shot shows
CODING_INTRO = "Coded examples of similar reports (for reference; they are not this patient):\n\n"


def shot_fields(spec: TaskSpec | None) -> tuple[str, ...]:
    return SHOT_FIELDS if spec is None else spec.input_columns


# Leading words of exam descriptions -> modality tag.
MODALITY_WORDS = {
    "XR": "XR",
    "CT": "CT",
    "CTA": "CT",
    "MRI": "MR",
    "MR": "MR",
    "US": "US",
    "MAMMO": "MG",
    "MG": "MG",
    "NM": "NM",
    "PET": "NM",
}


def assemble_derived(recipe: Recipe) -> dict[str, Any]:
    """The system message as written, and the key the guard's fingerprints use when it retrieves."""
    config: dict[str, Any] = {"system": system_message(recipe.prompt)}
    if uses_retrieval(recipe):
        config["key_id"] = load_key(recipe).key_id
    return config


def uses_retrieval(recipe: Recipe) -> bool:
    cfg = recipe.assemble
    candidates = recipe.task == "coding" and (cfg.cpt_candidates > 0 or cfg.icd_candidates > 0)
    return cfg.n_shots > 0 or candidates


def modality_tag() -> pl.Expr:
    first = pl.col("exam_description").fill_null("").str.to_uppercase().str.extract(r"^\s*([A-Z]+)", 1)
    return pl.concat_str([pl.lit("modality:"), first.replace_strict(MODALITY_WORDS, default="other")])


def prompt_formats(example_ids: pl.Series, seed: int, explicit_ratio: float) -> pl.Series:
    """explicit/embedded per example: a keyed draw (sha256 of seed and example id), so it never changes when
    other records come and go."""
    draw = sha256_hex(example_ids, prefix=f"format:{seed}:").str.slice(0, 8).str.to_integer(base=16)
    return (
        pl.select(
            pl.when(draw.cast(pl.Float64) / 2**32 < explicit_ratio)
            .then(pl.lit("explicit"))
            .otherwise(pl.lit("embedded"))
        )
        .to_series()
        .alias("prompt_format")
    )


def _with_defaults(rows: pl.DataFrame) -> pl.DataFrame:
    defaults: dict[str, pl.Expr] = {
        "example_key": pl.lit("base"),
        "sample_weight": pl.lit(1.0),
        "code_tags": pl.lit([], dtype=pl.List(pl.String)),
        **{c: pl.lit(None, dtype=pl.String) for c in PAIR_COLUMNS},
    }
    rows = rows.with_columns(expr.alias(name) for name, expr in defaults.items() if name not in rows.columns)
    if "case_content_hash" not in rows.columns:
        rows = rows.with_columns(content_hash(rows).alias("case_content_hash"))
    keys = rows.select(pl.concat_str([pl.col("example_key"), pl.lit(":"), pl.col("case_id")])).to_series()
    return rows.with_columns(sha256_hex(keys, prefix="example:").str.slice(0, 24).alias("example_id"))


def case_table(rows: pl.DataFrame, guard: Guard, spec: TaskSpec | None) -> pl.DataFrame:
    """One row per case node: the fields a shot shows and its answer (a case's examples share them)."""
    answer = answer_line_expr() if spec is None else pl.col(spec.target).fill_null("")
    codes = [c for c in ("cpt_codes", "icd10_codes") if c in rows.columns]
    first = rows.sort("case_id", "example_key").unique("case_id", keep="first", maintain_order=True)
    shown = [pl.col(f) if f in rows.columns else pl.lit(None, pl.String).alias(f) for f in shot_fields(spec)]
    fields = first.select("case_id", *shown, *codes, answer.alias("answer"))
    return guard.cases.select(pl.col("node").cast(pl.Int64), "case_id").join(fields, on="case_id", how="left")


def attach_shots(examples: pl.DataFrame, shots: pl.DataFrame, cases: pl.DataFrame, recipe: Recipe) -> pl.DataFrame:
    """Add `shots_text`, `n_shots`, `shot_case_ids`: the best shots that fit in `max_prompt_tokens` (the
    estimate of the prompt without shots comes first; shots are added in rank order while they fit)."""
    spec = spec_of(recipe)
    budget = recipe.assemble.max_prompt_tokens
    system = token_estimate(pl.lit(system_message(recipe.prompt)))
    base_tokens = system + token_estimate(user_message_expr(spec, examples.columns))  # the prompt without shots
    examples = examples.with_columns(base_tokens.alias("_base_tokens"))
    shown_fields = cases.select(
        pl.col("node").alias("cand"),
        pl.col("case_id").alias("shot_case_id"),
        *[pl.col(f).alias(f"shot_{f}") for f in shot_fields(spec)],
        pl.col("answer").alias("shot_answer"),
    )
    blocks = (
        examples.select("example_id", "node", "prompt_format", "_base_tokens")
        .join(shots, on="node")
        .join(shown_fields, on="cand", how="left")
        .with_columns(shot_expr(spec).alias("_block"))
        .with_columns(
            pl.when(pl.col("rank") == 0)
            .then(pl.concat_str([pl.lit(CODING_INTRO if spec is None else spec.intro), pl.col("_block")]))
            .otherwise(pl.col("_block"))
            .alias("_block")
        )
        .sort("example_id", "rank")
        .with_columns(chunk_tokens(pl.col("_block")).cum_sum().over("example_id").alias("_cum"))
        .filter(pl.col("_base_tokens") + pl.col("_cum") <= budget)
        .group_by("example_id", maintain_order=True)
        .agg(
            pl.col("_block").str.join("").alias("shots_text"),
            pl.len().cast(pl.Int32).alias("n_shots"),
            pl.col("shot_case_id").alias("shot_case_ids"),
        )
    )
    available = shots.group_by("node").agg(pl.len().cast(pl.Int32).alias("_available"))
    out = examples.join(blocks, on="example_id", how="left", maintain_order="left")
    out = out.join(available, on="node", how="left", maintain_order="left")
    return out.with_columns(
        pl.col("n_shots").fill_null(0),
        pl.col("_available").fill_null(0),
        pl.col("shot_case_ids").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        (pl.col("_base_tokens") > budget).alias("_over_budget"),
    ).drop("_base_tokens")


EXAMPLE_BATCH = 16_384  # examples whose prompts are built (and written) at a time


def build_examples(
    rows: pl.DataFrame, recipe: Recipe, guard: Guard | None, found: Retrieval | None
) -> tuple[pl.DataFrame, dict[str, int]]:
    """(examples, shot counts). One example per input row (rows from the codes stage carry example_key,
    sample_weight, code_tags and the pair columns; other tasks get one base example of weight 1 per case)."""
    parts, shortfall = [], {"retrieval_short": 0, "dropped_for_budget": 0}
    for part, short in iter_examples(rows, recipe, guard, found):
        parts.append(part)
        shortfall = {k: shortfall[k] + short[k] for k in shortfall}
    return pl.concat(parts), shortfall


def iter_examples(
    rows: pl.DataFrame, recipe: Recipe, guard: Guard | None, found: Retrieval | None, batch: int | None = None
) -> Iterator[tuple[pl.DataFrame, dict[str, int]]]:
    """`build_examples` a batch at a time, in example-id order (their concatenation is its frame): what is
    corpus-wide (example ids, the case table shots are drawn from, voted candidates) is computed once, the
    prompts of `batch` examples at a time, so memory holds one batch's prompts and shots, not the corpus's."""
    cfg = recipe.assemble
    rows = _with_defaults(rows)
    rows = rows.with_columns(
        prompt_formats(rows["example_id"], recipe.seed, cfg.explicit_ratio if recipe.task == "coding" else 1.0)
    ).sort("example_id")
    coding = recipe.task == "coding"
    spec = spec_of(recipe)
    shots = cases = None
    if guard is not None and found is not None:
        rows = rows.join(
            guard.cases.select(pl.col("node").cast(pl.Int64), "case_id"), on="case_id", maintain_order="left"
        )
        cases = case_table(rows, guard, spec)
        if coding:
            neighbours = found.kept.filter(pl.col("rank") < cfg.candidate_neighbours)
            for column, top, gold in (
                ("cpt_candidates", cfg.cpt_candidates, "cpt_codes"),
                ("icd_candidates", cfg.icd_candidates, "icd10_codes"),
            ):
                voted = voted_codes(neighbours, cases.select("node", pl.col(gold).alias(column)), column, top)
                rows = rows.drop(column, strict=False).join(voted, on="node", how="left", maintain_order="left")
            rows = rows.with_columns(
                with_unspecified(pl.col("icd_candidates"), pl.col("from_code")).alias("icd_candidates")
            )
        shots = found.kept.filter(pl.col("rank") < cfg.n_shots).select("node", "rank", "cand")
    size = batch or EXAMPLE_BATCH
    for start in range(0, max(rows.height, 1), size):
        yield _examples_of(rows.slice(start, size), recipe, spec, shots, cases)


def _examples_of(
    rows: pl.DataFrame, recipe: Recipe, spec: TaskSpec | None, shots: pl.DataFrame | None, cases: pl.DataFrame | None
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The examples of a batch of rows (sorted by example id), with their shots drawn from `shots` / `cases`."""
    cfg = recipe.assemble
    coding = recipe.task == "coding"
    if shots is not None and cases is not None:
        mine = shots.join(rows.select(pl.col("node").unique()), on="node", how="semi")
        used = cases.join(mine.select(pl.col("cand").unique().alias("node")), on="node", how="semi")
        rows = attach_shots(rows, mine, used, recipe)
    else:
        rows = rows.with_columns(
            pl.lit(0, pl.Int32).alias("n_shots"),
            pl.lit(0, pl.Int32).alias("_available"),
            pl.lit([], dtype=pl.List(pl.String)).alias("shot_case_ids"),
            pl.lit(False).alias("_over_budget"),
        )
    for column in ("cpt_candidates", "icd_candidates"):
        if column not in rows.columns:
            rows = rows.with_columns(pl.lit(None, pl.List(pl.String)).alias(column))
    frame = with_messages(rows, spec, recipe.prompt)
    if coding:
        frame = gold_hits(frame, "cpt_codes", "cpt_candidates", "cpt_gold_in_candidates")
        frame = gold_hits(frame, "icd10_codes", "icd_candidates", "icd_gold_in_candidates")
    else:
        frame = frame.with_columns(
            pl.lit(None, pl.List(pl.Boolean)).alias(c) for c in ("cpt_gold_in_candidates", "icd_gold_in_candidates")
        )
    over = (
        pl.when(pl.col("_over_budget"))
        .then(pl.lit(["over_token_budget"]))
        .otherwise(pl.lit([], dtype=pl.List(pl.String)))
    )
    # radiology tasks are tagged by modality, a text task by the sections its target is written in
    kind = modality_tag() if recipe.task != "text" else None
    frame = frame.with_columns(
        pl.col("sample_weight").cast(pl.Float64),
        pl.concat_list(
            [
                pl.lit(f"task:{recipe.task}"),
                *([kind] if kind is not None else []),
                pl.concat_str([pl.lit("format:"), pl.col("prompt_format")]),
            ]
        )
        .list.concat("code_tags")
        .list.concat(section_tags(spec) if spec is not None else pl.lit([], dtype=pl.List(pl.String)))
        .list.concat(over)
        .alias("tags"),
    )
    shortfall = {
        "retrieval_short": int((frame["_available"] < cfg.n_shots).sum()),
        "dropped_for_budget": int((frame["n_shots"] < frame["_available"]).sum()),
    }
    return frame.select(EXAMPLE_COLUMNS).sort("example_id"), shortfall


# what `example_stats` and `retrieval_stats` read of the examples
STAT_COLUMNS = (
    "case_id",
    "split",
    "pair_of",
    "prompt_format",
    "n_shots",
    "tags",
    "cpt_gold_in_candidates",
    "icd_gold_in_candidates",
)


def blocked_pairs(found: Retrieval, guard: Guard) -> pl.DataFrame:
    """(case_id, shot_case_id, layers): every candidate the guard kept out of a record's prompt, by case id."""
    case_of = guard.cases.select(pl.col("node").cast(pl.Int64), "case_id")
    pairs = found.blocked_pairs
    if pairs.is_empty():
        return pl.DataFrame(schema={"case_id": pl.String, "shot_case_id": pl.String, "layers": pl.List(pl.String)})
    return (
        pairs.with_columns(pl.col("node").cast(pl.Int64), pl.col("cand").cast(pl.Int64))
        .join(case_of, on="node")
        .join(case_of.rename({"node": "cand", "case_id": "shot_case_id"}), on="cand")
        .select(
            pl.col("case_id").cast(pl.String),
            pl.col("shot_case_id").cast(pl.String),
            # a record's own case trips most layers: it is listed under `self` alone
            pl.when(pl.col("case_id") == pl.col("shot_case_id"))
            .then(pl.lit(["self"], pl.List(pl.String)))
            .otherwise(pl.col("layers"))
            .alias("layers"),
        )
        .sort("case_id", "shot_case_id")
    )


def retrieval_stats(found: Retrieval, examples: pl.DataFrame, guard: Guard) -> dict[str, Any]:
    """blocked_retrievals per layer, counted per example: each example runs its own retrieval (examples of one
    case share it, so a case's counts count once per example). A specificity-pair example's own case is its pair
    partner: the guard's `self` is reported as `pair` for it."""
    per_case = examples.group_by("case_id").agg(
        pl.len().alias("examples"), pl.col("pair_of").is_not_null().sum().alias("pair_examples")
    )
    counts = (
        guard.cases.select(pl.col("node").cast(pl.Int64), "case_id")
        .join(found.blocked.with_columns(pl.col("node").cast(pl.Int64)), on="node")
        .join(per_case, on="case_id")
    )
    weights = {"self": pl.col("examples") - pl.col("pair_examples"), "pair": pl.col("pair_examples")}
    by_layer = {
        name: int(counts.select((pl.col(layer) * weights.get(name, pl.col("examples"))).sum()).item() or 0)
        for name, layer in (*((x, x) for x in LAYERS), ("pair", "self"))
    }
    total = int(counts.select((pl.col("blocked") * pl.col("examples")).sum()).item() or 0)
    return {
        "total": total,
        "by_layer": by_layer,
        "per_case_total": int(counts["blocked"].sum()),
        "note": "fetched candidates (BM25 + dense, fused) the guard removed; one may trip several layers",
    }


def run_assemble(ctx: StageContext) -> StageResult:
    recipe = ctx.recipe
    cfg = recipe.assemble
    rows = ctx.read_input()
    timings: dict[str, float] = {}
    guard = found = None
    t0 = time.perf_counter()
    if uses_retrieval(recipe):
        ctx.phase("guard", 1, "indexes")
        guard = build_guard(rows, recipe.leakage, ctx.key, ctx.rundir.cache)
        ctx.advance(1)
        timings["guard_s"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        ctx.phase("retrieval", guard.cases.height, "queries")
        found = retrieve(guard, cfg, recipe.leakage.exact_index_max, on_settled=ctx.advance, executor=ctx.executor)
        timings["retrieve_s"] = round(time.perf_counter() - t1, 2)
    t2 = time.perf_counter()
    ctx.phase("prompts", rows.height, "records")
    writer = ctx.writer()
    summaries, shortfall = [], {"retrieval_short": 0, "dropped_for_budget": 0}
    for part, short in iter_examples(rows, recipe, guard, found):
        writer.add(part)  # prompts are written as they are built: memory holds one batch's
        summaries.append(part.select(STAT_COLUMNS))
        shortfall = {k: shortfall[k] + short[k] for k in shortfall}
        ctx.advance(part.height)
    writer.close()
    examples = pl.concat(summaries)  # the columns the stats read, not the prompts
    timings["prompts_s"] = round(time.perf_counter() - t2, 2)
    if guard is not None and found is not None:
        blocked_pairs(found, guard).write_parquet(ctx.out_dir / BLOCKED_RETRIEVALS)
    stats = example_stats(examples, recipe)
    stats["shots"] |= shortfall
    if guard is not None and found is not None:
        stats["blocked_retrievals"] = retrieval_stats(found, examples, guard)
        stats["retrieval"] = {
            "pool_texts": found.pool_size,
            "pool_cases": int((guard.cases["split"] == "train").sum()),
            "query_cases": guard.cases.height,
            "rounds": found.rounds,
            "embedding": guard.embedding,
        }
    stats["timings"] = timings
    return StageResult(rows_in=rows.height, rows_out=examples.height, stats=stats)


def example_stats(examples: pl.DataFrame, recipe: Recipe) -> dict[str, Any]:
    cfg = recipe.assemble
    n_shots = examples["n_shots"]
    stats: dict[str, Any] = {
        "examples_per_split": dict(examples.group_by("split").len().sort("split").iter_rows()),
        "formats": dict(examples.group_by("prompt_format").len().sort("prompt_format").iter_rows()),
        "shots": {
            "wanted": cfg.n_shots,
            "mean_kept": round(float(n_shots.cast(pl.Float64).mean() or 0.0), 4),  # type: ignore[arg-type]
            "histogram": {str(k): v for k, v in examples.group_by("n_shots").len().sort("n_shots").iter_rows()},
            "examples_short": int((n_shots < cfg.n_shots).sum()),
            "over_token_budget": int(examples["tags"].list.contains("over_token_budget").sum()),
            "max_prompt_tokens": cfg.max_prompt_tokens,
        },
    }
    if recipe.task == "coding":
        stats["candidates"] = {
            "cpt": recall(examples, "cpt_gold_in_candidates"),
            "icd10": recall(examples, "icd_gold_in_candidates"),
            "by_split": {
                split: {
                    "cpt": recall(part, "cpt_gold_in_candidates")["recall"],
                    "icd10": recall(part, "icd_gold_in_candidates")["recall"],
                }
                for (split,), part in examples.group_by(["split"], maintain_order=True)
            },
        }
    return stats
