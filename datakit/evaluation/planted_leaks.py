"""A planted-leak evaluation set built from real reports, and per-layer recall on it.

Base records are real Indiana University chest X-ray reports (one patient each). From a seeded subset, copies
are planted, each with its own case id:

- text perturbations, under a **new patient and accession** (so only the text layers can find them):
  `exact_copy`, `whitespace_case` (spacing and case changed), `addendum` (an addendum appended),
  `reordered` (sentences shuffled), `numbers_changed` (every number altered, or one added);
- metadata perturbations: `same_accession_new_text` (the original's patient and accession, another report's
  text) and `same_patient_new_exam` (the original's patient, a new accession, date and report).

`layer_recall` says, per perturbation, which share of planted copies each layer links to their original
(directly, not through the group), and `template_links` how often two different *unplanted* patients are linked
and by which layer (identical or near-identical template reports).
"""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path

import polars as pl

TEXT_KINDS = ("exact_copy", "whitespace_case", "addendum", "reordered", "numbers_changed")
META_KINDS = ("same_accession_new_text", "same_patient_new_exam")
ADDENDA = (
    "ADDENDUM: Findings discussed with the referring clinician by telephone.",
    "ADDENDUM: Comparison with the prior outside study shows no interval change.",
    "ADDENDUM: The lateral view was reviewed and confirms the above.",
)


def iu_cases(csv: Path) -> pl.DataFrame:
    """IU reports with findings and impression, in the case schema (one patient per report)."""
    raw = pl.read_csv(csv, infer_schema_length=0)
    raw = raw.filter(pl.col("findings").is_not_null() & pl.col("impression").is_not_null())
    base = dt.date(2020, 1, 1)
    return raw.select(
        ("IU" + pl.col("uid").str.zfill(5)).alias("case_id"),
        ("P" + pl.col("uid").str.zfill(5)).alias("patient_id"),
        ("A" + pl.col("uid").str.zfill(7)).alias("accession"),
        (pl.lit(base) + pl.duration(days=(pl.col("uid").cast(pl.Int64) * 7919) % 1400)).alias("exam_date"),
        pl.col("image").alias("exam_description"),
        pl.col("indication").alias("reason_for_exam"),
        pl.concat_str([pl.lit("FINDINGS: "), pl.col("findings"), pl.lit("\nIMPRESSION: "), pl.col("impression")]).alias(
            "report_text"
        ),
        pl.lit(["71046"]).alias("cpt_codes"),
    )


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _whitespace_case(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    out = [w.upper() if rng.random() < 0.15 else w.lower() if rng.random() < 0.15 else w for w in words]
    return ("  " if rng.random() < 0.5 else " ").join(out).replace("\n", " \n  ") + " "


def _change_numbers(text: str, rng: random.Random) -> str:
    changed = re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), text)
    if changed == text:  # no number in the report: add a measurement
        changed = text.replace("IMPRESSION:", f"Stable {rng.randint(3, 9)} mm nodule.\nIMPRESSION:", 1)
    return changed


def _reorder(text: str, rng: random.Random) -> str:
    parts = text.split("\nIMPRESSION: ")
    findings = _sentences(parts[0].removeprefix("FINDINGS: "))
    rng.shuffle(findings)
    if len(findings) > 1 and findings == _sentences(parts[0].removeprefix("FINDINGS: ")):
        findings = findings[1:] + findings[:1]
    return "FINDINGS: " + " ".join(findings) + ("\nIMPRESSION: " + parts[1] if len(parts) > 1 else "")


def planted_leaks(base: pl.DataFrame, per_kind: int = 100, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cases, truth): base cases plus planted copies; truth = (case_id, source_case_id, kind)."""
    rng = random.Random(seed)
    rows = base.to_dicts()
    sources = rng.sample(range(len(rows)), per_kind * (len(TEXT_KINDS) + len(META_KINDS)))
    planted, truth = [], []
    for n, i in enumerate(sources):
        kind = (TEXT_KINDS + META_KINDS)[n // per_kind]
        src = rows[i]
        new = dict(src)
        new["case_id"] = f"PL{n:05d}"
        other = rows[rng.randrange(len(rows))]
        if kind in TEXT_KINDS:
            new["patient_id"] = f"PLP{n:05d}"
            new["accession"] = f"PLA{n:06d}"
            new["exam_date"] = src["exam_date"] + dt.timedelta(days=rng.randint(1, 300))
        text = src["report_text"]
        if kind == "whitespace_case":
            new["report_text"] = _whitespace_case(text, rng)
            new["reason_for_exam"] = (src["reason_for_exam"] or "").upper()
        elif kind == "addendum":
            new["report_text"] = text + "\n" + rng.choice(ADDENDA)
        elif kind == "reordered":
            new["report_text"] = _reorder(text, rng)
        elif kind == "numbers_changed":
            new["report_text"] = _change_numbers(text, rng)
        elif kind == "same_accession_new_text":
            new["report_text"] = other["report_text"]
            new["reason_for_exam"] = other["reason_for_exam"]
        elif kind == "same_patient_new_exam":
            new["report_text"] = other["report_text"]
            new["reason_for_exam"] = other["reason_for_exam"]
            new["accession"] = f"PLA{n:06d}"
            new["exam_date"] = src["exam_date"] + dt.timedelta(days=rng.randint(30, 700))
        planted.append(new)
        truth.append({"case_id": new["case_id"], "source_case_id": src["case_id"], "kind": kind})
    cases = pl.concat([base, pl.DataFrame(planted, schema=base.schema)])
    return cases, pl.DataFrame(truth)


def layer_recall(
    det: object, truth: pl.DataFrame, jaccard_threshold: float, cosine_threshold: float, containment: float = 0.9
) -> pl.DataFrame:
    """Per perturbation kind: the share of planted copies each layer links to their original (and n)."""
    nodes = det.nodes  # type: ignore[attr-defined]
    sims = det.similarities  # type: ignore[attr-defined]
    cols = ["case_id", "content", "dedup_hash", "exam_fp", "accession_fp", "patient_key"]
    pairs = truth.join(nodes.select(cols), on="case_id").join(
        nodes.select(cols), left_on="source_case_id", right_on="case_id", suffix="_src"
    )
    pairs = pairs.with_columns(
        pl.min_horizontal("content", "content_src").cast(pl.UInt32).alias("a"),
        pl.max_horizontal("content", "content_src").cast(pl.UInt32).alias("b"),
    ).join(
        sims.select(pl.col("a").cast(pl.UInt32), pl.col("b").cast(pl.UInt32), "jaccard", "cosine"),
        on=["a", "b"],
        how="left",
    )
    from datakit.leakage import minhash

    sig, sizes = det.signatures, det.shingle_counts  # type: ignore[attr-defined]
    ca, cb = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    jac = minhash.jaccard(sig, ca, cb)
    pairs = pairs.with_columns(
        pl.Series("near_hit", minhash.is_near(jac, sizes[ca], sizes[cb], jaccard_threshold, containment))
    )
    same_text = pl.col("content") == pl.col("content_src")
    found = pairs.select(
        "kind",
        (pl.col("dedup_hash") == pl.col("dedup_hash_src")).alias("exact"),
        (same_text | pl.col("near_hit")).alias("near"),
        (same_text | (pl.col("cosine").fill_null(0) >= cosine_threshold)).alias("cosine"),
        (pl.col("exam_fp") == pl.col("exam_fp_src")).fill_null(False).alias("exam_fingerprint"),
        (pl.col("accession_fp") == pl.col("accession_fp_src")).fill_null(False).alias("accession"),
        (pl.col("patient_key") == pl.col("patient_key_src")).fill_null(False).alias("patient"),
    )
    layers = ["exact", "near", "cosine", "exam_fingerprint", "accession", "patient"]
    return (
        found.with_columns(pl.any_horizontal(layers).alias("any_layer"))
        .group_by("kind")
        .agg(pl.len().alias("n"), *[pl.col(c).mean().round(4) for c in [*layers, "any_layer"]])
        .sort("kind")
    )


def template_links(
    det: object, planted_ids: pl.Series, jaccard_threshold: float, cosine_threshold: float
) -> dict[str, int]:
    """Among unplanted records: records linked by each text layer to a record of a different patient."""
    nodes = det.nodes.filter(~pl.col("case_id").is_in(planted_ids.implode()))  # type: ignore[attr-defined]
    sims = det.similarities  # type: ignore[attr-defined]
    by_content = nodes.select("content", "patient_key", "case_id")
    exact = (
        nodes.group_by("content")
        .agg(pl.col("patient_key").n_unique().alias("patients"), pl.len().alias("n"))
        .filter(pl.col("patients") > 1)
    )
    out = {"records": nodes.height, "exact_records": int(exact["n"].sum() or 0)}
    for layer, column, threshold in (("near", "jaccard", jaccard_threshold), ("cosine", "cosine", cosine_threshold)):
        hits = sims.filter(pl.col(column).fill_null(0) >= threshold).select("a", "b")
        linked = (
            hits.join(by_content.rename({"content": "a"}), on="a")
            .join(by_content.rename({"content": "b"}), on="b", suffix="_b")
            .filter(pl.col("patient_key") != pl.col("patient_key_b"))
        )
        out[f"{layer}_records"] = int(pl.concat([linked["case_id"], linked["case_id_b"]]).n_unique())
        out[f"{layer}_pairs"] = linked.height
    return out
