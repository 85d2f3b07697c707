"""Hand-computed expectations for the coding and impression metrics, and the bootstrap's promises."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from datakit.score.bootstrap import System, estimate
from datakit.score.coding import CODING_METRICS, coding_rows, invalid_code_counts
from datakit.score.impression import IMPRESSION_METRICS, impression_rows

GOLD = "73562, 26 RT, M17.11, M25.561"  # knee X-ray: primary osteoarthritis right knee; pain in right knee
REPORT = "XR KNEE 3 VIEWS\nRight knee pain. Moderate medial joint space narrowing of the right knee."

# output -> expected (cpt_exact, primary, modifiers, icd_exact, any, root, recall, precision, all three,
#                     invalid, laterality, parse_error)
CASES = {
    "gold": (GOLD, (1, 1, 1, 1, 1, 1, 1.0, 1.0, 1, 0, 0, None)),
    "wrong modifier": ("73562, 26 LT, M17.11, M25.561", (1, 1, 0, 1, 1, 1, 1.0, 1.0, 0, 0, 1, None)),
    "missing secondary ICD": ("73562, 26 RT, M17.11", (1, 1, 1, 0, 1, 1, 0.5, 1.0, 0, 0, 0, None)),
    "unspecified for specific": ("73562, 26 RT, M17.11, M25.569", (1, 1, 1, 0, 1, 1, 0.5, 0.5, 0, 0, 0, None)),
    "hallucinated code": ("73562, 26 RT, M17.11, Z99.999", (1, 1, 1, 0, 1, 1, 0.5, 0.5, 0, 1, 0, None)),
    "category only": ("73562, 26 RT, M17, M25", (1, 1, 1, 0, 0, 1, 0.0, 0.0, 0, 1, 0, None)),
    "unknown modifier": ("73562, 26 QQ, M17.11, M25.561", (1, 1, 0, 1, 1, 1, 1.0, 1.0, 0, 1, 0, None)),
    "second CPT": ("73562, 73560, 26 RT, M17.11, M25.561", (0, 1, 1, 1, 1, 1, 1.0, 1.0, 0, 0, 0, None)),
    "unparseable": ("73562 26 RT M17.11", (0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0, 0, "no_cpt")),
    "missing": (None, (0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0, 0, "missing")),
}
COLUMNS = (
    "cpt_exact",
    "primary_cpt",
    "modifier_exact",
    "icd_exact",
    "icd_any_overlap",
    "icd_root_overlap",
    "icd_recall",
    "icd_precision",
    "all_three_exact",
    "invalid_code",
    "laterality_conflict",
    "parse_error",
)


def coding_frame(outputs: list[str | None]) -> pl.DataFrame:
    n = len(outputs)
    return pl.DataFrame(
        {
            "example_id": [f"e{i}" for i in range(n)],
            "completion": [[{"role": "assistant", "content": GOLD}]] * n,
            "output": outputs,
            "exam_description": ["XR KNEE 3 VIEWS"] * n,
            "report_text": [REPORT] * n,
            "pair_of": ["e0"] * n,  # a specificity pair: M25.569 (unspecified knee) -> M25.561 (right knee)
            "from_code": ["M25.569"] * n,
            "to_code": ["M25.561"] * n,
        }
    )


def test_coding_metrics_match_hand_computed_values() -> None:
    rows = coding_rows(coding_frame([c[0] for c in CASES.values()]), "output", None)
    for (name, (_, want)), got in zip(CASES.items(), rows.select(COLUMNS).iter_rows(), strict=True):
        assert got == pytest.approx(want) if want[-1] is None else got == want, name
    picked = dict(zip(CASES, rows["picked_specific"].to_list(), strict=True))
    assert picked["gold"] == 1 and picked["unspecified for specific"] == 0 and picked["missing secondary ICD"] == 0
    kinds = invalid_code_counts(rows)
    assert kinds["icd_unknown"] == {"codes": 1, "outputs": 1}  # Z99.999
    assert kinds["icd_not_billable"] == {"codes": 2, "outputs": 1}  # M17 and M25 are categories, not billable
    assert kinds["modifier_unknown"] == {"codes": 1, "outputs": 1}


def test_the_allow_list_judges_cpt_codes() -> None:
    rows = coding_rows(coding_frame([GOLD, "73560, 26 RT, M17.11, M25.561"]), "output", ["73562"])
    assert rows["invalid_code"].to_list() == [0.0, 1.0] and rows["cpt_not_allowed"].to_list() == [0, 1]


def test_a_left_code_for_a_right_knee_is_a_laterality_conflict() -> None:
    rows = coding_rows(coding_frame(["73562, 26, M17.12, M25.562", "73562, 26, M17.0, M25.561"]), "output", None)
    assert rows["laterality_conflict"].to_list() == [1.0, 0.0]  # M17.12/M25.562 are left; M17.0 is bilateral


def test_dataset_means_and_intervals() -> None:
    rows = coding_rows(coding_frame([c[0] for c in CASES.values()]), "output", None)
    facets = {"kind": pl.Series(["a"] * 5 + ["b"] * 5)}
    est = estimate([System("model", rows)], CODING_METRICS, facets, 0, 1, [])
    overall = est["all"]["all"]["systems"]["model"]
    assert overall["icd_recall"]["value"] == pytest.approx(np.mean([c[1][6] for c in CASES.values()]), abs=1e-4)
    # invalid codes: over the 8 outputs that parse (3 of them hold one), not the 10 examples
    assert overall["invalid_code"]["value"] == pytest.approx(3 / 8, abs=1e-4)
    assert overall["cpt_exact"]["ci"] == [None, None]  # no draws asked for
    assert est["kind"]["a"]["n"] == est["kind"]["b"]["n"] == 5


def test_bootstrap_is_seeded_and_paired() -> None:
    rng = np.random.default_rng(0)
    outputs = [GOLD if x else "73562, 26 RT, M17.11" for x in rng.random(400) < 0.7]
    model = coding_rows(coding_frame(outputs), "output", None)
    base = coding_rows(coding_frame([GOLD if x else None for x in rng.random(400) < 0.5]), "output", None)
    systems = [System("model", model), System("baseline", base), System("same", model)]
    facets = {"half": pl.Series(["x", "y"] * 200)}
    first = estimate(systems, CODING_METRICS, facets, 300, 7, [("model", "baseline"), ("model", "same")])
    again = estimate(systems, CODING_METRICS, facets, 300, 7, [("model", "baseline"), ("model", "same")])
    other = estimate(systems, CODING_METRICS, facets, 300, 8, [("model", "baseline"), ("model", "same")])
    assert first == again and first != other
    cell = first["all"]["all"]["systems"]["model"]["icd_exact"]
    assert cell["ci"][0] < cell["value"] < cell["ci"][1] and cell["ci"][1] - cell["ci"][0] < 0.15
    # a system against itself: every draw's difference is 0 (the same resampled examples for both)
    assert first["all"]["all"]["deltas"]["model-same"]["icd_exact"] == {"value": 0.0, "ci": [0.0, 0.0]}
    delta = first["all"]["all"]["deltas"]["model-baseline"]["icd_exact"]
    assert delta["value"] == pytest.approx(
        cell["value"] - first["all"]["all"]["systems"]["baseline"]["icd_exact"]["value"], abs=1e-3
    )


def impression_frame(golds: list[str], outputs: list[str | None], findings: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "completion": [[{"role": "assistant", "content": g}] for g in golds],
            "output": outputs,
            "report_text": findings,
        }
    )


def test_impression_metrics_agree_with_the_libraries() -> None:
    golds = ["No acute cardiopulmonary abnormality.", "Small right pleural effusion.", "Left lower lobe pneumonia."]
    outputs = ["Impression: no acute cardiopulmonary process.", "Small right effusion.", ""]
    rows = impression_rows(impression_frame(golds, outputs, ["Clear lungs."] * 3), "output")
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    want = [
        scorer.score(golds[0], outputs[0][12:])["rougeL"].fmeasure,
        scorer.score(golds[1], outputs[1])["rougeL"].fmeasure,
        0.0,
    ]
    assert rows["rouge_l"].to_list() == pytest.approx(want)
    est = estimate([System("model", rows)], IMPRESSION_METRICS, {}, 0, 1, [])["all"]["all"]["systems"]["model"]
    corpus = sacrebleu.corpus_bleu([outputs[0][12:], outputs[1], ""], [golds]).score / 100
    assert est["bleu"]["value"] == pytest.approx(corpus, abs=1e-4)
    assert rows["parse_error"].to_list() == [None, None, "empty"]


def test_contradicting_impressions_are_flagged() -> None:
    findings = [
        "There is a small right pleural effusion.",
        "No pneumothorax. Lungs are clear.",
        "Large left pneumothorax.",
        "No focal consolidation. Heart size normal.",
    ]
    outputs = [
        "Small left pleural effusion.",  # side the findings do not name
        "Small right pneumothorax.",  # states a finding the findings negate
        "No pneumothorax.",  # negates a finding the findings state
        "No acute cardiopulmonary abnormality. No consolidation.",  # agrees
    ]
    rows = impression_rows(impression_frame(["x"] * 4, outputs, findings), "output")
    assert rows["laterality_contradiction"].to_list() == [1.0, 0.0, 0.0, 0.0]
    assert rows["negation_contradiction"].to_list() == [0.0, 1.0, 1.0, 0.0]
    assert rows["contradiction"].to_list() == [1.0, 1.0, 1.0, 0.0]
