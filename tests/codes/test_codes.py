from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from datakit.codes import cpt, icd10
from datakit.codes.conflicts import find_conflicts, resolve
from datakit.codes.hard_cases import hard_case_tags
from datakit.codes.modifiers import known_modifiers, modifier_flags
from datakit.codes.pairs import hierarchy_pairs, review_pairs
from datakit.codes.prior_runs import exclude
from datakit.codes.stage import apply_policy, bad_codes, build_examples
from datakit.errors import RecipeError
from datakit.recipe import Codes
from tests.conftest import coding_recipe, run_recipe


def case(case_id: str = "c1", icd: list[str] | None = None, initial: list[str] | None = None, **extra: object):  # type: ignore[no-untyped-def]
    row: dict[str, object] = {
        "case_id": case_id,
        "patient_id": "p1",
        "exam_description": "XR SHOULDER",
        "reason_for_exam": "pain",
        "report_text": "Right shoulder pain. No fracture.",
        "cpt_codes": ["73030"],
        "modifiers": ["26", "RT"],
        "icd10_codes": icd or ["M25.511"],
        "initial_icd10_codes": initial,
        "updated_at": dt.datetime(2024, 1, 1),
        "code_tags": [],
    }
    row.update(extra)
    return row


def frame(*rows: dict[str, object]) -> pl.DataFrame:
    schema = {
        "case_id": pl.String,
        "patient_id": pl.String,
        "exam_description": pl.String,
        "reason_for_exam": pl.String,
        "report_text": pl.String,
        "cpt_codes": pl.List(pl.String),
        "modifiers": pl.List(pl.String),
        "icd10_codes": pl.List(pl.String),
        "initial_icd10_codes": pl.List(pl.String),
        "updated_at": pl.Datetime("us"),
        "code_tags": pl.List(pl.String),
    }
    return pl.DataFrame(list(rows), schema=schema)


def pairs_of(pairs: pl.DataFrame) -> set[tuple[str, str, str]]:
    return set(pairs.select("case_id", "from_code", "to_code").iter_rows())


def test_normalise_and_check_against_the_code_set() -> None:
    raw = pl.Series([" m25511 ", "j90", "S82.90xa", "M25.5", "Z99.999"])
    norm = pl.DataFrame({"c": raw}).select(icd10.normalise(pl.col("c"))).to_series().to_list()
    assert norm == ["M25.511", "J90", "S82.90XA", "M25.5", "Z99.999"]
    status = {r["code"]: r for r in icd10.check(pl.Series(norm)).iter_rows(named=True)}
    assert status["M25.511"]["valid"] and status["M25.511"]["billable"]
    assert status["M25.511"]["description"] == "Pain in right shoulder"
    assert status["M25.5"]["valid"] and not status["M25.5"]["billable"]
    assert not status["Z99.999"]["valid"]


def test_review_pairs_follow_the_reviewer() -> None:
    cases = frame(
        case("a", icd=["M25.511"], initial=["M25.50"]),
        case("b", icd=["S82.90XB"], initial=["S82.90XA"]),  # other encounter: never a correction
        case("c", icd=["M25.511"], initial=["R10.9"]),  # other category: never a correction
        case("d", icd=["M25.50"], initial=["M25.511"]),  # made less specific: not a correction
        case("e", icd=["S82.91XA", "J90"], initial=["S82.90XA", "J90"]),
    )
    pairs = review_pairs(cases)
    assert pairs_of(pairs) == {("a", "M25.50", "M25.511"), ("e", "S82.90XA", "S82.91XA")}
    kinds = dict(pairs.select("case_id", "pair_kind").iter_rows())
    assert kinds == {"a": "laterality+site", "e": "laterality"}


def test_hierarchy_pairs_use_the_nearest_unspecified_relative() -> None:
    cases = frame(
        case("a", icd=["M25.561"]),
        case("b", icd=["S82.91XA"]),
        case("c", icd=["Z12.31"]),
        case("d", icd=["J90"]),
        case("e", icd=["I25.10"]),
        case("f", icd=["R05.1"]),
        case("g", icd=["M25.511"], initial=["M25.511"]),  # has first-pass codes: review pairs only
    )
    assert pairs_of(hierarchy_pairs(cases)) == {
        ("a", "M25.569", "M25.561"),
        ("b", "S82.90XA", "S82.91XA"),
        ("c", "Z12.9", "Z12.31"),
        ("f", "R05.9", "R05.1"),
        ("e", "I25.9", "I25.10"),
    }  # not I25.119 "with unspecified angina": a different statement


def test_invalid_code_policies() -> None:
    cases = frame(
        case("ok"), case("nb", icd=["M25.511", "M25.5"]), case("zz", icd=["Z99.999"]), case("cpt", cpt_codes=["7303"])
    )
    bad = bad_codes(cases, Codes())
    assert dict(bad.select("code", "reason").iter_rows()) == {
        "Z99.999": "unknown_icd10",
        "M25.5": "non_billable_icd10",
        "7303": "malformed_cpt",
    }
    kept, quarantined = apply_policy(cases, bad, "quarantine")
    assert kept["case_id"].to_list() == ["ok"]
    assert dict(quarantined.select("case_id", "reason").iter_rows()) == {
        "nb": "non_billable_icd10",
        "zz": "unknown_icd10",
        "cpt": "malformed_cpt",
    }
    kept, quarantined = apply_policy(cases, bad, "drop_code")
    assert dict(kept.select("case_id", "icd10_codes").iter_rows()) == {"ok": ["M25.511"], "nb": ["M25.511"]}
    assert sorted(quarantined["case_id"]) == ["cpt", "zz"] and set(quarantined["reason"]) == {"no_valid_codes_left"}
    kept, quarantined = apply_policy(cases, bad, "keep_tag")
    assert quarantined.height == 0 and kept.height == 4
    assert dict(kept.select("case_id", "code_tags").iter_rows())["nb"] == ["invalid_code:non_billable_icd10"]


def test_cpt_formats_and_allow_list(tmp_path: Path) -> None:
    status = cpt.check(pl.Series(["71046", "0042T", "3074F", "G0204", "7104", "ABCDE"]), None)
    assert dict(status.select("code", "well_formed").iter_rows()) == {
        "71046": True,
        "0042T": True,
        "3074F": True,
        "G0204": True,
        "7104": False,
        "ABCDE": False,
    }
    allow = tmp_path / "cpt.txt"
    allow.write_text("71046  # chest 2 views\n74177\n")
    cases = frame(case("a", cpt_codes=["71046"]), case("b", cpt_codes=["73030"]))
    bad = bad_codes(cases, Codes(cpt_allow_list=str(allow)))
    assert dict(bad.select("code", "reason").iter_rows()) == {"73030": "cpt_not_in_allow_list"}
    with pytest.raises(RecipeError, match="file not found"):
        cpt.load_allow_list(str(tmp_path / "missing.txt"))


def test_modifier_flags_and_hard_cases() -> None:
    cases = frame(
        case("rt_left", report_text="Left shoulder pain.", modifiers=["RT"]),
        case("rt_right", report_text="Right shoulder pain.", modifiers=["RT"]),
        case("lt_right", report_text="Pain in the right shoulder.", modifiers=["LT"]),
        case("both", report_text="Left and right comparison views.", modifiers=["RT"]),
        case("bilat", modifiers=["50", "RT"]),
        case("comp", modifiers=["26", "TC"]),
        case("odd", modifiers=["ZZ"]),
        case("multi", cpt_codes=["71260", "74177"], modifiers=[]),
        case("rep", modifiers=["76"]),
    )
    tags = cases.select("case_id", pl.concat_list([*modifier_flags(), *hard_case_tags()]).list.drop_nulls().alias("t"))
    got = dict(tags.iter_rows())
    assert got["rt_left"] == ["flag:rt_but_text_says_left"] and got["lt_right"] == ["flag:lt_but_text_says_right"]
    assert got["rt_right"] == [] and got["both"] == []
    assert "flag:bilateral_with_side" in got["bilat"] and "flag:26_with_tc" in got["comp"]
    assert got["odd"] == ["flag:unknown_modifier"]
    assert got["multi"] == ["hard_case:multi_code"] and got["rep"] == ["hard_case:modifier_heavy"]
    assert "hard_case:modifier_heavy" in got["comp"]  # two modifiers
    assert known_modifiers()["26"] == "professional component"


def test_label_conflict_policies() -> None:
    cases = frame(
        case("old", icd=["M25.511"], updated_at=dt.datetime(2024, 1, 1)),
        case(
            "new", icd=["M25.519"], updated_at=dt.datetime(2024, 2, 1), report_text="RIGHT  shoulder pain. No fracture."
        ),
        case("same", icd=["M25.511"], report_text="Other text."),
    )
    conflicts = find_conflicts(cases)
    assert sorted(conflicts["case_id"]) == ["new", "old"] and conflicts["conflict_group"].n_unique() == 1
    assert "report_text" not in conflicts.columns  # ids only
    kept, report = resolve(cases, conflicts, "keep_latest")
    assert sorted(kept["case_id"]) == ["new", "same"] and report.filter("kept")["case_id"].to_list() == ["new"]
    assert sorted(resolve(cases, conflicts, "drop_all")[0]["case_id"]) == ["same"]
    assert resolve(cases, conflicts, "keep_all")[0].height == 3


def test_pair_examples_and_replicate_weighting() -> None:
    cases = frame(case("a", icd=["M25.511"], initial=["M25.50"]), case("b"))
    pairs = review_pairs(cases)
    rows = build_examples(cases, pairs, Codes())
    pair = rows.filter(pl.col("pair_of").is_not_null()).row(0, named=True)
    assert pair["example_key"] == "pair:M25.50>M25.511" and pair["sample_weight"] == 3.0
    assert pair["icd_candidates"] == ["M25.50", "M25.511"] and "specificity_pair" in pair["code_tags"]
    replicated = build_examples(cases, pairs, Codes(weighting="replicate"))
    assert replicated.height == 2 + 3 and set(replicated["sample_weight"]) == {1.0}
    assert replicated.select("case_id", "example_key").n_unique() == 5


def test_exclude_by_case_id_or_content_hash() -> None:
    cases = frame(case("a"), case("b", report_text="Other."), case("c", report_text="Third."))
    cases = cases.with_columns(pl.Series("case_content_hash", ["h1", "h2", "h3"]))
    prior = pl.DataFrame({"case_id": ["a", "zz"], "case_content_hash": ["h1", "h3"]})
    kept, counts = exclude(cases, prior)
    assert kept["case_id"].to_list() == ["b"]
    assert counts == {
        "excluded_prior_run": 2,
        "excluded_prior_run_by_case_id": 1,
        "excluded_prior_run_by_content_hash_only": 1,
    }


def test_prior_run_exclusion_end_to_end(tmp_path: Path) -> None:
    first = tmp_path / "v1"
    run_recipe(coding_recipe("source.n=400"), first)
    manifest = first / "shards" / "manifest.json"
    index = pl.read_parquet(first / "shards" / "_examples_index.parquet")
    again = tmp_path / "v2"
    # what is left is v1's eval set (~50 rows in a few groups): eval shares that such a corpus can fill
    split = ("split.train=0.5", "split.val=0.25", "split.test=0.25")
    run_recipe(coding_recipe("source.n=400", f'codes.exclude_manifests=["{manifest}"]', *split), again)
    stats = json.loads((again / "stages" / "codes" / "_stage.json").read_text())["stats"]
    trained = set(index.filter(pl.col("split") == "train")["case_id"])
    v2_cases = set(pl.read_parquet(again / "shards" / "_examples_index.parquet")["case_id"])
    assert stats["excluded_prior_run"] >= len(trained) > 0 and not (trained & v2_cases)
    # v1's eval cases were never trained on: they stay available
    assert set(index.filter(pl.col("split") != "train")["case_id"]) <= v2_cases
    with pytest.raises(RecipeError, match="not found"):
        run_recipe(coding_recipe("source.n=50", f'codes.exclude_manifests=["{tmp_path}/nope.json"]'), tmp_path / "x")


def test_codes_stage_on_the_sample(sample_run: Path) -> None:
    record = json.loads((sample_run / "stages" / "codes" / "_stage.json").read_text())
    stats = record["stats"]
    assert stats["specificity_pairs"] > 100 and set(stats["pairs_by_source"]) == {"review", "hierarchy"}
    assert {"laterality", "type"} <= set(stats["pairs_by_kind"])
    assert stats["tags"]["hard_case:multi_code"] > 0 and stats["tags"]["hard_case:modifier_heavy"] > 0
    assert record["rows_out"] == stats["cases_out"] + stats["specificity_pairs"]


def test_hierarchy_navigation() -> None:
    assert icd10.ancestors("M25.511")[:3] == ["M25.51", "M25.5", "M25"]
    assert icd10.children("M25.51") == ["M25.511", "M25.512", "M25.519"]
