"""The train/eval certificate: every layer re-run across the split, with complete searches.

The groups already keep linked records together, so a correct build finds nothing here; the point is that this
check does not trust the grouping. Each layer answers `across` with a complete search: keys are joined; every LSH
bucket shared by an eval text and a train text is verified; each eval text's single most similar train text is
found by exact search; the words layer's sparse product covers every eval/train pair. Anything found is
returned as edges, so the stage can regroup and re-split, and counted, so the certificate can fail. Content
links that touch a template text (see `detect.template_contents`) are counted apart as exempt: a text that close
to a boilerplate shared by many patients carries nothing patient-specific across the split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from datakit import __version__
from datakit.keys import SecretKey
from datakit.leakage.layers.base import EDGE_SCHEMA, Sides
from datakit.leakage.splits import EVAL_SPLITS, membership_hash
from datakit.recipe import Leakage, Recipe

if TYPE_CHECKING:
    from datakit.leakage.detect import Detection

STRENGTH_FILE = "strength.json"  # written by bench/leakage_quality.py --write-strength


def strength_settings(cfg: Leakage) -> dict[str, Any]:
    """The settings the harness figures depend on (compared with the recipe's before they are quoted)."""
    return {
        "minhash_threshold": cfg.minhash.threshold,
        "minhash_containment": cfg.minhash.containment,
        "cosine_threshold": cfg.cosine_threshold,
        "template_min_patients": cfg.template_min_patients,
        "words": cfg.words.model_dump(mode="json"),
        "shot_verbatim": cfg.shot_verbatim,
        "shot_outlier_gap": cfg.shot_outlier_gap,
    }


def tested_strength(cfg: Leakage) -> dict[str, Any]:
    """What "passed" is worth: the paraphrase harness's figures (per edit class: grouped, straddling, twin shown
    as a shot; false links on negative pairs) measured with datakit's defaults, and whether this recipe's
    settings are those defaults. Different settings are untested: the certificate says so instead of quoting."""
    from importlib import resources

    try:
        measured = json.loads(resources.files("datakit.leakage").joinpath(f"data/{STRENGTH_FILE}").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"measured": False, "note": "no harness figures shipped with this datakit"}
    current = strength_settings(cfg)
    differs = sorted(k for k, v in current.items() if measured.get("settings", {}).get(k) != v)
    return {
        "measured": True,
        "applies": not differs,
        "settings_that_differ": differs,
        "note": (
            "figures measured by bench/leakage_quality.py with these very settings"
            if not differs
            else "this recipe's settings differ from the measured ones: the figures below do not describe this run"
        ),
        **{k: measured[k] for k in ("datakit_version", "command", "sets") if k in measured},
    }


@dataclass
class Certificate:
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    cross_edges: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=EDGE_SCHEMA))

    @property
    def cross_link_total(self) -> int:
        return sum(int(v["train_eval_links"]) for v in self.layers.values())

    def to_json(
        self, out: pl.DataFrame, recipe: Recipe, key: SecretKey, det: Detection, rounds: list[dict[str, Any]]
    ) -> dict[str, Any]:
        layers = dict(self.layers)
        layers["pair"] = _pair_check(out)
        clean = all(v.get("disabled") or (v["ran"] and v["train_eval_links"] == 0) for v in layers.values())
        per_split = out.group_by("split").agg(pl.len().alias("rows"), pl.col("case_id").n_unique().alias("cases"))
        eval_rows = int(per_split.filter(pl.col("split") != "train")["rows"].sum() or 0)
        # no eval record, nothing certified: never "passed" (null, with the reason), and not a failure either
        passed: bool | None = clean if eval_rows else None
        return {
            "certificate_version": 1,
            "datakit_version": __version__,
            "recipe": recipe.name,
            "seed": recipe.seed,
            "passed": passed,
            **(
                {}
                if eval_rows
                else {"not_certified": "the build has no val or test record (split.val = split.test = 0)"}
            ),
            "layers": layers,
            "records": {
                r["split"]: {"rows": r["rows"], "cases": r["cases"]}
                for r in per_split.sort("split").iter_rows(named=True)
            },
            "split_membership_sha256": {s: membership_hash(out, s) for s in ("train", "val", "test")},
            "split_mode": (
                "frozen_eval"
                if recipe.split.frozen_eval
                else "source_split"
                if recipe.split.source_column
                else "time_cutoff"
                if recipe.split.time_cutoff
                else "ratio"
            ),
            "repair_rounds": rounds,
            "template_rule": {
                "min_patients": recipe.leakage.template_min_patients,
                "template_texts": int(det.nodes.filter(pl.col("template"))["content"].n_unique()),
                "template_cases": int(det.nodes["template"].sum()),
                "meaning": (
                    "exact/near/cosine links that touch a text of a cluster shared by at least min_patients "
                    "patients, and near links that hold by containment alone and touch a look-alike text (a "
                    "template body under another header), group only lone records (no other exam of their "
                    "patient, no shared accession); between other records they are counted as "
                    "template_links_exempt and do not fail the certificate; patient, accession and exam links "
                    "always do"
                ),
            },
            "tested_strength": tested_strength(recipe.leakage),
            "cosine_search": (
                "exact"
                if det.nodes["content"].n_unique() <= recipe.leakage.exact_index_max
                else "approximate (FAISS IVF above leakage.exact_index_max): a near pair can be missed"
            ),
            "embedding_model": det.embedding.get("model_id"),
            "key": {"key_id": key.key_id, "demo_key": key.is_demo},
            "deid": {
                "columns_kept_as_written": list(recipe.deid.keep_columns),
                "independent_residual_scan": "off (deid.unsafe_skip_residual_scan)"
                if recipe.deid.residual_scan_share == 0
                else "on",
            },
        }


def _pair_check(out: pl.DataFrame) -> dict[str, Any]:
    """A specificity-pair example must sit in the split of the case it was made from."""
    if "pair_of" not in out.columns:
        return {"ran": True, "train_eval_links": 0, "checked": 0, "note": "no specificity pairs in this task"}
    base = (
        out.filter(pl.col("pair_of").is_null()).select("case_id", pl.col("split").alias("base_split")).unique("case_id")
    )
    pairs = out.filter(pl.col("pair_of").is_not_null()).join(base, left_on="pair_of", right_on="case_id", how="left")
    crossing = pairs.filter(pl.col("base_split").is_not_null() & (pl.col("split") != pl.col("base_split")))
    return {"ran": True, "train_eval_links": crossing.height, "checked": pairs.height, "threshold": "same case"}


def _side() -> pl.Expr:
    return pl.when(pl.col("split").is_in(EVAL_SPLITS)).then(pl.lit("eval")).otherwise(pl.lit("train"))


def sides(det: Detection, assigned: pl.DataFrame) -> Sides:
    """Each node's side under `assigned` and a representative node of each content on each side."""
    nodes = det.nodes.join(assigned.select("node", "split"), on="node").with_columns(_side().alias("side"))
    template = np.zeros(len(det.texts), dtype=bool)
    template[det.nodes.filter(pl.col("template"))["content"].unique().to_numpy()] = True
    look_alike = np.zeros(len(det.texts), dtype=bool)
    look_alike[det.nodes.filter(pl.col("look_alike"))["content"].unique().to_numpy()] = True
    reps = nodes.group_by("content", "side").agg(pl.col("node").min().alias("rep"))

    def side(name: str) -> pl.DataFrame:
        return reps.filter(pl.col("side") == name).select(pl.col("content").cast(pl.UInt32), "rep").sort("content")

    alone = np.zeros(len(det.texts), dtype=bool)
    single = det.nodes.group_by("content").agg(pl.len().alias("cases"), pl.col("alone").all())
    alone[single.filter((pl.col("cases") == 1) & pl.col("alone"))["content"].to_numpy()] = True
    return Sides(
        nodes=nodes, train=side("train"), eval=side("eval"), template=template, look_alike=look_alike, alone=alone
    )


def certify(det: Detection, assigned: pl.DataFrame) -> Certificate:
    """Every layer of the detection asked across the split (`Layer.across`)."""
    split = sides(det, assigned)
    cert = Certificate()
    edges = []
    for layer in det.layers:
        cross = layer.across(det.corpus, split)
        cert.layers[layer.name] = cross.entry
        edges.append(cross.edges)
    cert.cross_edges = pl.concat([e.select(list(EDGE_SCHEMA)).cast(EDGE_SCHEMA) for e in edges])  # type: ignore[arg-type]
    return cert
