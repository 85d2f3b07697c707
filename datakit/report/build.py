"""The auditor's leakage report: `reports/leakage.json`, `reports/leakage.html`, `reports/certificate.json`.

Everything in them is an ID, a hash, a count or a score: no report text, unless `--include-text` is given and
the run holds de-identified text (a deid stage output), which it then shows for the largest clusters only.
Charts are inline SVG, so the HTML file is one self-contained page that reads offline.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from datakit.content import description_key, sha256_hex
from datakit.errors import StageError
from datakit.recipe import Recipe
from datakit.report.removed import write_removed_report
from datakit.rundir import (
    CERTIFICATE,
    LEAKAGE_HTML,
    LEAKAGE_IDS,
    LEAKAGE_SUMMARY,
    REPAIR_MOVES,
    SIMILARITIES,
    STAGE_FILE,
    RunDir,
    atomic_write_json,
    read_record,
)

SIZE_BINS = ((1, 1), (2, 2), (3, 5), (6, 10), (11, 50), (51, 200), (201, None))
WHAT_IF_JACCARD = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
WHAT_IF_COSINE = (0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)


def _histogram(values: pl.Series, start: float, stop: float, step: float) -> list[dict[str, Any]]:
    edges = [round(start + i * step, 4) for i in range(round((stop - start) / step) + 1)]
    bins = []
    for lo, hi in itertools.pairwise(edges):
        last = hi >= stop
        n = int(((values >= lo) & ((values <= hi) if last else (values < hi))).sum())
        bins.append({"from": lo, "to": hi, "count": n})
    return bins


def leakage_summary(
    *,
    out: pl.DataFrame,
    links: pl.DataFrame,
    node_groups: pl.DataFrame,
    similarities: pl.DataFrame,
    groups: pl.DataFrame,
    certificate: dict[str, Any],
    layers: dict[str, Any],
    embedding: dict[str, Any],
    recipe: Recipe,
    rows_in: int,
    moves: pl.DataFrame | None = None,
    top: int | None = None,
) -> dict[str, Any]:
    """The JSON report (IDs, hashes, counts, scores only). `links`: a, b (nodes), kind, score; `node_groups`:
    node, leakage_group."""
    cfg = recipe.leakage
    top = cfg.report_top_clusters if top is None else top
    by_kind = links_by_kind(links)
    size_hist = []
    for lo, hi in SIZE_BINS:
        sel = groups.filter((pl.col("cases") >= lo) & ((pl.col("cases") <= hi) if hi else pl.lit(True)))
        size_hist.append(
            {
                "label": f"{lo}" if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}",
                "groups": sel.height,
                "cases": int(sel["cases"].sum() or 0),
            }
        )
    jac = similarities["jaccard"].drop_nulls() if "jaccard" in similarities.columns else pl.Series([], dtype=pl.Float32)
    cos = similarities["cosine"].drop_nulls() if "cosine" in similarities.columns else pl.Series([], dtype=pl.Float32)
    largest = groups.sort(["cases", "leakage_group"], descending=[True, False]).head(top)
    members = (
        out.filter(pl.col("leakage_group").is_in(largest["leakage_group"].implode()))
        .unique("case_id")
        .sort("case_id")
        .group_by("leakage_group")
        .agg(pl.col("case_id").head(25), pl.col("dedup_hash").str.slice(0, 16).head(25).alias("dedup_hashes"))
    )
    link_scores = (  # the largest groups' links only (a look-alike corpus has millions of links)
        links.join(
            node_groups.join(largest.select("leakage_group"), on="leakage_group", how="semi"),
            left_on="a",
            right_on="node",
        )
        .group_by("leakage_group", "kind")
        .agg(pl.len().alias("n"), pl.col("score").min().alias("min_score"))
    )
    clusters = []
    for g in largest.iter_rows(named=True):
        m = members.filter(pl.col("leakage_group") == g["leakage_group"])
        ks = link_scores.filter(pl.col("leakage_group") == g["leakage_group"]).sort("kind")
        clusters.append(
            {
                "leakage_group": g["leakage_group"],
                "cases": g["cases"],
                "rows": g["rows"],
                "patients": g["patients"],
                "split": g["split"],
                "links": {
                    r["kind"]: {"count": r["n"], "min_score": round(float(r["min_score"]), 4)}
                    for r in ks.iter_rows(named=True)
                },
                "case_ids": m["case_id"][0].to_list() if m.height else [],
                "dedup_hashes": m["dedup_hashes"][0].to_list() if m.height else [],
            }
        )
    per_split = (
        out.group_by("split")
        .agg(
            pl.len().alias("rows"),
            pl.col("case_id").n_unique().alias("cases"),
            pl.col("leakage_group").n_unique().alias("groups"),
        )
        .sort("split")
    )
    cross_patient = groups.filter(pl.col("patients") > 1)
    look_alikes = int(out.unique("case_id")["look_alike"].sum()) if "look_alike" in out.columns else 0
    return {
        "recipe": recipe.name,
        "seed": recipe.seed,
        "rows_in": rows_in,
        "cases": int(out["case_id"].n_unique()),
        "distinct_texts": int(out["dedup_hash"].n_unique()),
        "thresholds": {
            "minhash_jaccard": cfg.minhash.threshold,
            "minhash": cfg.minhash.model_dump(mode="json"),
            "cosine": cfg.cosine_threshold,
            "cosine_neighbours": cfg.cosine_neighbours,
            "words": cfg.words.model_dump(mode="json"),
        },
        "look_alike_cases": look_alikes,
        "eval_mix": eval_mix(out),
        "links": {
            "by_kind": {kind: n for kind, (n, _) in by_kind.items()},
            "records_by_kind": {kind: records for kind, (_, records) in by_kind.items()},
        },
        "groups": {
            "count": groups.height,
            "singletons": int((groups["cases"] == 1).sum()),
            "multi_patient": cross_patient.height,
            "multi_patient_cases": int(cross_patient["cases"].sum() or 0),
            "size_histogram": size_hist,
            "largest": clusters,
        },
        "similarity": {
            "jaccard_histogram": _histogram(jac, 0.5, 1.0, 0.05),
            "cosine_histogram": _histogram(cos, 0.85, 1.0, 0.01),
            "what_if": {
                "jaccard": [{"threshold": t, "text_pairs": int((jac >= t).sum())} for t in WHAT_IF_JACCARD],
                "cosine": [{"threshold": t, "text_pairs": int((cos >= t).sum())} for t in WHAT_IF_COSINE],
            },
        },
        "splits": {
            "rows": {r["split"]: r["rows"] for r in per_split.iter_rows(named=True)},
            "cases": {r["split"]: r["cases"] for r in per_split.iter_rows(named=True)},
            "groups": {r["split"]: r["groups"] for r in per_split.iter_rows(named=True)},
            "rules": _rules(out),
        },
        "certificate": certificate,
        "repair": repair_section(certificate["repair_rounds"], moves),
        "layers": layers,
        "embedding": embedding,
    }


def links_by_kind(links: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """{kind: (links, records)} in kind order, records being the distinct nodes a link of the kind touches: one
    flag per node, not a table of every endpoint (113K sample cases: 13.2M links)."""
    a, b = links["a"].to_numpy(), links["b"].to_numpy()
    nodes = int(max(a.max(), b.max())) + 1 if links.height else 0
    found = {}
    for kind in links["kind"].unique().sort().to_list():
        mask = (links["kind"] == kind).to_numpy()
        seen = np.zeros(nodes, dtype=bool)
        seen[a[mask]] = True
        seen[b[mask]] = True
        found[kind] = (int(mask.sum()), int(seen.sum()))
    return found


MIX_TOP = 15


def eval_mix(out: pl.DataFrame) -> dict[str, Any]:
    """How the eval split (val + test) differs from the whole population, by exam family (the first word of the
    exam description: XR, CT, MRI…) and by exam description: shares side by side, the total variation distance
    (0: same mix, 1: disjoint), and the frequent kinds (>= 1% of cases) that eval lacks. Grouping keeps linked
    records together and sends oversized groups to train, which can leave eval without the commonest reports;
    this is where an auditor sees it."""
    cases = out.unique("case_id").with_columns(pl.col("split").is_in(["val", "test"]).alias("_eval"))
    if "exam_description" not in cases.columns or not cases["_eval"].any():
        return {"note": "no exam descriptions or no eval records"}
    desc = description_key(pl.col("exam_description").fill_null(""))
    cases = cases.with_columns(
        desc.alias("exam_description"), desc.str.extract(r"^([A-Z]+)", 1).fill_null("?").alias("exam_family")
    )
    result: dict[str, Any] = {"eval_cases": int(cases["_eval"].sum()), "cases": cases.height}
    for facet in ("exam_family", "exam_description"):
        mix = (
            cases.group_by(facet)
            .agg(pl.len().alias("n"), pl.col("_eval").sum().alias("n_eval"))
            .with_columns(
                (pl.col("n") / cases.height).alias("population_share"),
                (pl.col("n_eval") / max(1, int(cases["_eval"].sum()))).alias("eval_share"),
            )
            .sort(["n", facet], descending=[True, False])
        )
        tvd = float((mix["population_share"] - mix["eval_share"]).abs().sum() / 2)
        # exam descriptions are written into report text: the report names them by a short hash only
        # (sha256 of the upper-cased description, first 12 hex), an auditor maps them back from the run's data
        named = mix.with_columns(
            sha256_hex(mix[facet], prefix="exam-description:").str.slice(0, 12).alias("value")
            if facet == "exam_description"
            else pl.col(facet).alias("value")
        )
        missing = named.filter((pl.col("population_share") >= 0.01) & (pl.col("n_eval") == 0))
        result[facet] = {
            "total_variation_distance": round(tvd, 4),
            "values": "exam family (first word)" if facet == "exam_family" else "sha256 of the description, 12 hex",
            "top": [
                {
                    "value": r["value"],
                    "population_share": round(r["population_share"], 4),
                    "eval_share": round(r["eval_share"], 4),
                }
                for r in named.head(MIX_TOP).iter_rows(named=True)
            ],
            "frequent_missing_in_eval": missing["value"].to_list()[:20],
        }
    return result


IDS_IN_JSON = 1000  # per layer; every id is in reports/leakage_ids.csv


def ids_by_layer(frame: pl.DataFrame, id_column: str = "case_id") -> dict[str, dict[str, Any]]:
    """layer -> {records, case_ids (first IDS_IN_JSON, sorted), complete}: a frame with a `layers` list column."""
    per = (
        frame.select(id_column, "layers")
        .explode("layers")
        .drop_nulls("layers")
        .group_by("layers")
        .agg(pl.col(id_column).unique().sort())
        .sort("layers")
    )
    return {
        r["layers"]: {
            "records": len(r[id_column]),
            "case_ids": r[id_column][:IDS_IN_JSON],
            "complete": len(r[id_column]) <= IDS_IN_JSON,
        }
        for r in per.iter_rows(named=True)
    }


def repair_section(rounds: list[dict[str, Any]], moves: pl.DataFrame | None) -> dict[str, Any]:
    """Train↔eval links per layer before repair (round 0) and after (last round), and the records it moved."""
    moved = moves if moves is not None else pl.DataFrame(schema={"case_id": pl.String, "layers": pl.List(pl.String)})
    return {
        "links_before_repair": rounds[0].get("by_layer", {}) if rounds else {},
        "links_after_repair": rounds[-1].get("by_layer", {}) if rounds else {},
        "rounds": len(rounds) - 1 if rounds else 0,
        "records_moved": moved.height,
        "moved_by_layer": ids_by_layer(moved),
        "ids": "case ids as the shards carry them (keyed when deid.id_columns holds case_id)",
    }


def _rules(out: pl.DataFrame) -> dict[str, int]:
    if "split_rule" not in out.columns:
        return {}
    return dict(out.group_by("split_rule").len().sort("split_rule").iter_rows())


def _label_conflicts(run_dir: Path) -> dict[str, Any] | None:
    path = RunDir(run_dir).label_conflicts()
    if not path.is_file():
        return None
    table = pl.read_parquet(path)
    keep = [c for c in table.columns if c.endswith("id") or c.endswith("hash") or c in ("resolution", "action")]
    return {"count": table.height, "rows": table.select(keep).head(50).to_dicts()}


def _blocked_retrievals(run_dir: Path) -> pl.DataFrame | None:
    path = RunDir(run_dir).blocked_retrievals()
    return pl.read_parquet(path) if path.is_file() else None


def _retrieval_guard(run_dir: Path, stage_dir: Path) -> dict[str, Any] | None:
    """The assemble stage's blocked retrievals, shots and candidate recall, when it ran on this leakage output."""
    record = RunDir(run_dir).record("assemble")
    if record is None:
        return None
    stats = record.get("stats", {})
    current = (read_record(stage_dir / STAGE_FILE) or {}).get("output_fingerprint")
    return {
        "current": record.get("inputs", {}).get("leakage") == current,
        "blocked_retrievals": stats.get("blocked_retrievals"),
        "shots": stats.get("shots"),
        "candidates": stats.get("candidates"),
        "retrieval": {k: v for k, v in stats.get("retrieval", {}).items() if k != "embedding"},
        "blocked_records_by_layer": ids_by_layer(blocked)
        if (blocked := _blocked_retrievals(run_dir)) is not None
        else {},
    }


def write_id_csv(run_dir: Path, stage_dir: Path, path: Path) -> Path:
    """reports/leakage_ids.csv: section, layer, case_id, other_case_id — every record repair moved (other: empty)
    and every (record, blocked shot) pair of the retrieval guard, one row per layer."""
    columns = {"section": pl.String, "layer": pl.String, "case_id": pl.String, "other_case_id": pl.String}
    parts = [pl.DataFrame(schema=columns)]
    moves_path = stage_dir / REPAIR_MOVES
    if moves_path.is_file():
        moved = pl.read_parquet(moves_path).explode("layers")
        parts.append(
            moved.select(
                pl.lit("moved_by_repair").alias("section"),
                pl.col("layers").alias("layer"),
                pl.col("case_id").cast(pl.String),
                pl.lit(None, pl.String).alias("other_case_id"),
            )
        )
    blocked = _blocked_retrievals(run_dir)
    if blocked is not None:
        parts.append(
            blocked.explode("layers").select(
                pl.lit("blocked_retrieval").alias("section"),
                pl.col("layers").alias("layer"),
                "case_id",
                pl.col("shot_case_id").alias("other_case_id"),
            )
        )
    table = pl.concat(parts).sort("section", "layer", "case_id", "other_case_id", nulls_last=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.write_csv(tmp)
    tmp.replace(path)
    return path


def _bars(bins: list[dict[str, Any]], value: str, label: str) -> dict[str, Any]:
    peak = max([b[value] for b in bins] + [1])
    return {
        "bars": [{"label": b[label], "value": b[value], "height": round(120 * b[value] / peak, 1)} for b in bins],
        "width": 40 * len(bins) + 40,
    }


def render_html(summary: dict[str, Any], label_conflicts: dict[str, Any] | None, texts: dict[str, str] | None) -> str:
    env = Environment(loader=PackageLoader("datakit.report", "templates"), autoescape=select_autoescape(["html"]))
    size = _bars(summary["groups"]["size_histogram"], "groups", "label")
    jac_bins = [{**b, "label": f"{b['from']:.2f}"} for b in summary["similarity"]["jaccard_histogram"]]
    cos_bins = [{**b, "label": f"{b['from']:.2f}"} for b in summary["similarity"]["cosine_histogram"]]
    return env.get_template("leakage.html").render(
        s=summary,
        size_chart=size,
        jaccard_chart=_bars(jac_bins, "count", "label"),
        cosine_chart=_bars(cos_bins, "count", "label"),
        label_conflicts=label_conflicts,
        texts=texts,
        json_dump=lambda v: json.dumps(v, indent=2, sort_keys=True, default=str),
    )


def _deid_texts(run_dir: Path, summary: dict[str, Any]) -> dict[str, str]:
    rd = RunDir(run_dir)
    if not rd.has_stage("deid"):
        raise StageError(
            "--include-text shows de-identified text only, and this run has no deid stage output; "
            "the report stays IDs and hashes"
        )
    ids = [c for cluster in summary["groups"]["largest"] for c in cluster["case_ids"]]
    frame = rd.read_stage("deid", columns=["case_id", "report_text"])
    return dict(frame.filter(pl.col("case_id").is_in(ids)).unique("case_id").iter_rows())


def what_if(stage_dir: Path, jaccard_threshold: float, cosine_threshold: float) -> dict[str, Any]:
    """Text pairs the stored similarities link at other thresholds, and how many cross train/eval now."""
    sims = pl.read_parquet(stage_dir / SIMILARITIES)
    side = (
        pl.read_parquet(sorted(stage_dir.glob("part-*.parquet")), columns=["dedup_hash", "split"])
        .with_columns(pl.col("split").is_in(["val", "test"]).alias("eval"))
        .group_by("dedup_hash")
        .agg(pl.col("eval").any().alias("any_eval"), (~pl.col("eval")).any().alias("any_train"))
    )
    hits = sims.filter(
        (pl.col("jaccard").fill_null(0) >= jaccard_threshold) | (pl.col("cosine").fill_null(0) >= cosine_threshold)
    )
    joined = hits.join(side, left_on="hash_a", right_on="dedup_hash").join(
        side, left_on="hash_b", right_on="dedup_hash", suffix="_b"
    )
    cross = joined.filter((pl.col("any_eval") & pl.col("any_train_b")) | (pl.col("any_train") & pl.col("any_eval_b")))
    return {
        "jaccard_threshold": jaccard_threshold,
        "cosine_threshold": cosine_threshold,
        "text_pairs": hits.height,
        "cross_split_pairs": cross.height,
    }


def publish_certificate(rd: RunDir, stage_dir: Path) -> Path:
    """reports/certificate.json: the leakage stage's certificate, for the recipe of the run that publishes it.

    The stage's own copy names no recipe hash: a recipe change the leakage stage does not depend on (a prompt or
    shard setting) leaves the stage current and its certificate valid, and the certificate must then name the recipe
    the shards were made with (`datakit score` refuses a certificate of another recipe)."""
    certificate = json.loads((stage_dir / CERTIFICATE).read_text())
    certificate["recipe_hash"] = (rd.run_record() or {}).get("recipe_hash")
    path = rd.report(CERTIFICATE)
    atomic_write_json(path, certificate)
    return path


def write_reports(
    run_dir: Path,
    stage_dir: Path | None = None,
    include_text: bool = False,
    cosine_threshold: float | None = None,
    jaccard_threshold: float | None = None,
) -> tuple[dict[str, Path], dict[str, Any] | None]:
    """Render reports/ from the leakage stage's outputs (the stage calls it; so does `datakit report`)."""
    rd = RunDir(run_dir)
    stage_dir = stage_dir or rd.stage_dir("leakage")
    summary_path = stage_dir / LEAKAGE_SUMMARY
    if not summary_path.is_file():
        raise StageError(f"{run_dir} has no leakage stage output: run `datakit leakage` (or `datakit run`) first")
    summary = json.loads(summary_path.read_text())
    if isinstance(summary.get("certificate"), dict):  # for the recipe of the run that publishes it, as below
        summary["certificate"]["recipe_hash"] = (rd.run_record() or {}).get("recipe_hash")
    applied = None
    if cosine_threshold is not None or jaccard_threshold is not None:
        t = summary["thresholds"]
        applied = what_if(
            stage_dir,
            jaccard_threshold if jaccard_threshold is not None else t["minhash_jaccard"],
            cosine_threshold if cosine_threshold is not None else t["cosine"],
        )
        summary["what_if_applied"] = applied
    conflicts = _label_conflicts(run_dir)
    summary["label_conflicts"] = conflicts
    summary["retrieval_guard"] = _retrieval_guard(run_dir, stage_dir)
    texts = _deid_texts(run_dir, summary) if include_text else None
    rd.reports.mkdir(parents=True, exist_ok=True)
    paths = {
        "certificate": publish_certificate(rd, stage_dir),
        "json": rd.report(LEAKAGE_SUMMARY),
        "html": rd.report(LEAKAGE_HTML),
        "ids_csv": write_id_csv(run_dir, stage_dir, rd.report(LEAKAGE_IDS)),
    }
    paths["json"].write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    paths["html"].write_text(render_html(summary, conflicts, texts))
    paths |= write_removed_report(run_dir)
    return paths, applied


def publish_guard(run_dir: Path) -> None:
    """After assemble: the leakage report gains the retrieval guard's counts (when the leakage report exists)."""
    if RunDir(run_dir).leakage_summary().is_file():
        write_reports(run_dir)
