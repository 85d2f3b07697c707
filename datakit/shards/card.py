"""The dataset card (README.md beside the shards), rendered from a template file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import polars as pl

from datakit.recipe import Recipe
from datakit.shards.layout import CARD, SPLITS

COLUMN_MEANINGS = {
    "example_id": "stable id of the training example",
    "case_id": "case id (see `case_id` below: keyed or as the source wrote it)",
    "split": "train / val / test",
    "prompt": "list of {role, content} messages: system instruction, then the user message",
    "completion": "list with one assistant message: the target",
    "sample_weight": "loss weight of the example (1.0 unless a stage up-weights it)",
    "n_prompt_tokens": "estimated prompt tokens",
    "n_completion_tokens": "estimated completion tokens",
    "tags": "labels such as task:coding, modality:CT",
    "case_content_hash": "sha256 of the case's coding-relevant input text",
    "pair_of": "specificity-correction examples: the case id they are a copy of (else null)",
    "from_code": "specificity-correction examples: the unspecified code (in the ICD candidate list)",
    "to_code": "specificity-correction examples: the specific code the answer uses",
    "pair_kind": "laterality, site, episode or type ('+'-joined when several)",
    "prompt_format": "explicit (Exam Description / Reason for Exam lines, then the body) or embedded (body only)",
    "n_shots": "few-shot examples in the prompt (retrieved from train, passed by the leakage guard)",
    "shot_case_ids": "case ids of those few-shot examples, in prompt order",
    "cpt_candidates": "CPT candidates listed in the prompt (coding task; null otherwise)",
    "icd_candidates": "ICD-10-CM candidates listed in the prompt (coding task; null otherwise)",
    "cpt_gold_in_candidates": "per gold CPT code, in answer order: is it in cpt_candidates",
    "icd_gold_in_candidates": "per gold ICD-10-CM code, in answer order: is it in icd_candidates",
}


def token_percentiles(examples: pl.DataFrame) -> dict[str, dict[str, int]]:
    out = {}
    for col in ("n_prompt_tokens", "n_completion_tokens"):
        s = examples[col]
        out[col] = {q: int(s.quantile(v, "nearest") or 0) for q, v in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
        out[col]["max"] = int(s.max() or 0)  # type: ignore[arg-type]
    return out


def tag_counts(examples: pl.DataFrame) -> dict[str, int]:
    counts = examples.select(pl.col("tags").explode()).to_series().value_counts(sort=True)
    return dict(counts.iter_rows())


def case_id_meaning(recipe: Recipe) -> str:
    """What the case ids in the shards are, as this recipe made them (the card must not promise more)."""
    if "case_id" in recipe.deid.id_columns and "case_id" not in recipe.deid.keep_columns:
        return "keyed HMAC-SHA256 of the source case id (`deid.id_columns` holds case_id); the raw id is not here"
    return (
        "the source's own case id, not keyed (`deid.keep_columns` holds it): keep it so only when it cannot identify "
        "a patient (an accession number can)"
    )


def deid_caveats(recipe: Recipe) -> str:
    """What the reader must know about de-identification that the recipe chose: columns kept as written, the
    independent residual check turned off."""
    lines = []
    if recipe.deid.keep_columns:
        kept = ", ".join(f"`{c}`" for c in recipe.deid.keep_columns)
        lines.append(f"Columns kept as written, not de-identified (`deid.keep_columns`): {kept}.")
    if recipe.deid.residual_scan_share == 0:
        lines.append(
            "**The independent residual-PHI check did not run (`deid.unsafe_skip_residual_scan`): nothing checked "
            "what de-identification left.**"
        )
    return "".join(" " + line for line in lines)


def write_card(out: Path, recipe: Recipe, manifest: dict[str, Any], examples: pl.DataFrame) -> None:
    meanings = COLUMN_MEANINGS | {"case_id": case_id_meaning(recipe)}
    template = Template(resources.files("datakit.shards").joinpath("templates/card.md").read_text())
    present = [s for s in SPLITS if manifest["splits"][s]["shards"]]
    tokens = token_percentiles(examples)
    text = template.substitute(
        name=recipe.name,
        task=recipe.task,
        seed=recipe.seed,
        recipe_hash=manifest["recipe_hash"][:16],
        datakit_version=manifest["datakit_version"],
        key_line=(
            "**Identifiers are keyed with the published demo key: anyone can re-key them; not for real patient data.**"
            if manifest["key"]["demo_key"]
            else f"Identifiers are keyed with a secret key (key id `{manifest['key']['key_id']}`)."
        )
        + deid_caveats(recipe),
        world_size=manifest["world_size"],
        description=recipe.description or f"Fine-tuning data for the `{recipe.task}` task.",
        data_files="\n".join(f'  - split: {s}\n    path: "{s}-*.parquet"' for s in present),
        split_rows="\n".join(
            f"| {s} | {manifest['splits'][s]['rows']} | {manifest['splits'][s]['shards']} |" for s in SPLITS
        ),
        column_rows="\n".join(
            f"| `{c['name']}` | `{c['type']}` | {meanings.get(c['name'], '')} |" for c in manifest["schema"]
        ),
        token_estimate=manifest["token_estimate"],
        token_rows="\n".join(
            f"| {col} | {v['p50']} | {v['p90']} | {v['p99']} | {v['max']} |" for col, v in tokens.items()
        ),
        tag_rows="\n".join(f"- `{t}`: {n}" for t, n in tag_counts(examples).items()),
        loader_files="\n".join(f'    "{s}": f"{{shards}}/{s}-*.parquet",' for s in present),
    )
    (out / CARD).write_text(text)
