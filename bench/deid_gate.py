"""The deid stage's fail-closed gate on real corpora nobody here wrote: does it pass ordinary input and stop a leak?

Runs `pull → deid` with the default recipe settings on
- the PhysioNet deid notes (984 ICU nursing and progress notes, `physionet_deid/notes.jsonl`), as an impression
  recipe (the note as the report, its first line as a stand-in target);
- MedPix 2.0 teaching cases (671: history, exam, findings and differential as the report, the case diagnosis as
  the impression), and again with the topic's teaching discussion added (eponyms, cited authors);
and prints the independent scan's verdict: records scanned and flagged, the rate per 1,000 with its 95% interval,
hits by kind. Then each again with a planted leak: names kept as written (`deid.operators.PERSON = "keep"`, a
misconfiguration that leaves every name in), which the gate must stop.

    python bench/deid_gate.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import polars as pl
from rich.console import Console

from datakit.errors import StageError
from datakit.evaluation import physionet
from datakit.pipeline import run_pipeline
from datakit.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_data"
RECIPE = ROOT / "recipes" / "radiology-impression.toml"


def physionet_cases() -> pl.DataFrame:
    notes = physionet.load(REAL)
    return pl.DataFrame(
        {
            "case_id": [n.note_id for n in notes],
            "patient_id": [str(n.patient) for n in notes],
            "report_text": [n.text for n in notes],
            "impression": [(n.text.strip().split("\n") or [""])[0][:200] or "note" for n in notes],
        }
    )


def medpix_cases(discussion: bool = False) -> pl.DataFrame:
    cases = json.loads((REAL / "medpix_2_0" / "Case_topic.json").read_text())
    rows = []
    for c in cases:
        case, topic = c.get("Case") or {}, c.get("Topic") or {}
        parts = [f"{k}: {case.get(k)}" for k in ("History", "Exam", "Findings", "Differential Diagnosis")]
        if discussion:  # the topic's teaching text: eponyms and cited authors
            parts.append(f"Discussion: {topic.get('Disease Discussion') or ''}")
        rows.append(
            {
                "case_id": c["U_id"],
                "report_text": "\n".join(parts),
                "impression": case.get("Case Diagnosis") or case.get("Title") or "n/a",
            }
        )
    return pl.DataFrame(rows)


def run(name: str, frame: pl.DataFrame, work: Path, *extra: str) -> dict[str, object]:
    path = work / f"{name}.parquet"
    frame.write_parquet(path)
    overrides = [
        f"source.path={path}",
        "source.format=parquet",
        "source.columns={}",
        "keys.allow_demo_for_real_data=true",
        'deid.keep_columns=["case_id"]',
        *extra,
    ]
    recipe = load_recipe(RECIPE, overrides)
    out = work / f"run-{name}-{len(extra)}"
    t0 = time.perf_counter()
    try:
        run_pipeline(recipe, out, Console(quiet=True), only=["pull", "deid"])
        stopped = False
    except StageError:
        stopped = True
    seconds = time.perf_counter() - t0
    audit = json.loads((out / "reports" / "deid.json").read_text())
    scan = audit["independent_scan"]
    return {
        "records": audit["records_in"],
        "stopped": stopped,
        "seconds": round(seconds, 1),
        **{k: scan[k] for k in ("records_scanned", "records_flagged", "flagged_per_1k_records")},
        "interval_95": scan["interval_95_per_1k_records"],
        "hits": scan["hits_by_kind"],
        "quarantined": audit["quarantined"]["by_reason"],
    }


def main() -> None:
    if not (REAL / physionet.NOTES).is_file():
        raise SystemExit(f"{REAL} not found: the benchmark needs ../shared/real_data")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpora = (
            ("physionet", physionet_cases()),
            ("medpix", medpix_cases()),
            ("medpix+discussion", medpix_cases(discussion=True)),
        )
        for name, frame in corpora:
            plain = run(name, frame, work)
            leak = run(name, frame, work, 'deid.operators={"PERSON" = "keep"}')
            print(f"{name:<18} default: {'STOPPED' if plain['stopped'] else 'passed'} {json.dumps(plain)}")
            print(
                f"{name:<10} planted leak (names kept): {'stopped' if leak['stopped'] else 'NOT STOPPED'} "
                f"{json.dumps(leak)}"
            )


if __name__ == "__main__":
    main()
