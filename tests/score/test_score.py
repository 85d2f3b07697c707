"""`datakit score` on a real run of the flagship recipe: gold scores 1.0, floors, counts, refusal, reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.score.floors import majority
from datakit.score.inputs import ScoreError, gold_text, read_predictions
from datakit.score.scoring import score_predictions


@pytest.fixture(scope="module")
def run(sample_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared sample run (scoring writes into reports/)."""
    out = tmp_path_factory.mktemp("scored") / "run"
    shutil.copytree(sample_run, out, ignore=shutil.ignore_patterns("cache"))
    return out


def eval_examples(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "shards" / "test-*.parquet").sort("example_id")


def gold_predictions(run: Path, path: Path) -> pl.DataFrame:
    frame = eval_examples(run).select("example_id", gold_text().alias("prediction"))
    frame.write_ndjson(path)
    return frame


def test_gold_answers_score_one_on_every_metric(run: Path, tmp_path: Path) -> None:
    gold_predictions(run, tmp_path / "gold.jsonl")
    summary = score_predictions(run, tmp_path / "gold.jsonl", n_boot=50)
    model = summary["overall"]["systems"]["model"]
    for metric in summary["metrics"]:
        cell = model[metric["name"]]
        if metric["lower_is_better"]:  # the data's own rate: the gold answers judged by the same checks
            assert cell["value"] == summary["gold_reference"][metric["name"]], metric
            continue
        assert cell["value"] == 1.0 and cell["ci"] == [1.0, 1.0], metric["name"]
    assert model["invalid_code"]["value"] == 0.0
    assert summary["inputs"]["model"] | {"file": None} == {
        "file": None,
        "predictions": summary["inputs"]["model"]["examples"],
        "examples": summary["inputs"]["model"]["examples"],
        "scored": summary["inputs"]["model"]["examples"],
        "missing": 0,
        "extra": 0,
        "duplicate": 0,
        "null_id": 0,
        "empty": 0,
    }
    # every slice of the model is perfect too, and the slices cover every example once per facet
    n = summary["inputs"]["model"]["examples"]
    for facet, levels in summary["slices"].items():
        assert sum(e["n"] for e in levels.values()) == n, facet
        assert all(e["systems"]["model"]["cpt_exact"]["value"] == 1.0 for e in levels.values())
    assert {"specificity_pair", "hard_case", "modality", "exam_family", "prompt_format", "n_shots"} <= set(
        summary["slices"]
    )


def test_missing_extra_duplicate_and_broken_outputs_are_counted_not_dropped(run: Path, tmp_path: Path) -> None:
    gold = gold_predictions(run, tmp_path / "gold.jsonl")
    ids = gold["example_id"].to_list()
    broken = pl.concat(
        [
            gold.slice(10),  # the first 10 examples have no prediction
            gold.slice(10, 3),  # 3 repeated ids: the first copy is scored
            pl.DataFrame({"example_id": ["not-an-example"], "prediction": ["74176, , R10.84"]}),
        ]
    ).with_columns(
        pl.when(pl.col("example_id") == ids[20])
        .then(pl.lit("not an answer"))
        .otherwise(pl.col("prediction"))
        .alias("prediction")
    )
    broken.write_csv(tmp_path / "broken.csv")
    summary = score_predictions(run, tmp_path / "broken.csv", n_boot=0)
    counts = summary["inputs"]["model"]
    assert (counts["missing"], counts["extra"], counts["duplicate"], counts["scored"]) == (10, 1, 3, len(ids) - 10)
    assert summary["parse_errors"]["model"] == {"missing": 10, "no_cpt": 1}
    expected = (len(ids) - 11) / len(ids)  # missing and unparseable outputs score 0
    assert summary["overall"]["systems"]["model"]["all_three_exact"]["value"] == pytest.approx(expected, abs=1e-4)


def test_floors_are_the_prompts_candidates_and_the_train_majority(run: Path, tmp_path: Path) -> None:
    gold_predictions(run, tmp_path / "gold.jsonl")
    summary = score_predictions(run, tmp_path / "gold.jsonl", n_boot=0)
    vote = summary["overall"]["systems"]["retrieval_vote"]
    major = summary["overall"]["systems"]["majority"]
    # the floors are real floors: informative (they get the CPT mostly right) and well below the gold answers
    assert 0.5 < vote["primary_cpt"]["value"] < 1.0 and 0.0 < vote["all_three_exact"]["value"] < 0.6
    assert major["primary_cpt"]["value"] > 0.8 and major["icd_exact"]["value"] < 0.8
    assert set(summary["overall"]["deltas"]) == {"model-retrieval_vote", "model-majority"}
    # majority, checked by hand for one exam description
    examples = pl.read_parquet(run / "shards" / "*-of-*.parquet").join(
        pl.read_parquet(run / "stages" / "leakage" / "part-*.parquet", columns=["case_id", "exam_description"]).unique(
            "case_id"
        ),
        on="case_id",
    )
    test = examples.filter(pl.col("split") == "test").sort("example_id").head(1)
    train = examples.filter(pl.col("split") == "train")
    same = train.filter(
        (pl.col("exam_description").str.to_uppercase() == test["exam_description"][0].upper())
        & pl.col("pair_of").is_null()
    )
    answers = same.select(gold_text().alias("a"))["a"].value_counts().sort(["count", "a"], descending=[True, False])
    assert majority(test, train)[0] == answers["a"][0]


def test_an_uncertified_run_is_refused_unless_allowed(run: Path, tmp_path: Path) -> None:
    gold_predictions(run, tmp_path / "gold.jsonl")
    bad = tmp_path / "uncertified"
    shutil.copytree(run, bad)
    cert_path = bad / "reports" / "certificate.json"
    cert = json.loads(cert_path.read_text())
    cert_path.write_text(json.dumps({**cert, "passed": False}))
    with pytest.raises(ScoreError, match="did not pass"):
        score_predictions(bad, tmp_path / "gold.jsonl", n_boot=0)
    summary = score_predictions(bad, tmp_path / "gold.jsonl", n_boot=0, allow_uncertified=True)
    assert summary["certificate"]["passed"] is False and "UNCERTIFIED" in (bad / "reports" / "score.html").read_text()
    cert_path.unlink()
    with pytest.raises(ScoreError, match=r"no reports/certificate\.json"):
        score_predictions(bad, tmp_path / "gold.jsonl", n_boot=0)


def test_prediction_files_in_every_format_and_named_columns(run: Path, tmp_path: Path) -> None:
    gold = gold_predictions(run, tmp_path / "gold.jsonl")
    renamed = gold.rename({"example_id": "id", "prediction": "output"})
    renamed.write_parquet(tmp_path / "p.parquet")
    renamed.write_csv(tmp_path / "p.csv")
    for name in ("p.parquet", "p.csv"):
        assert read_predictions(tmp_path / name, "id", "output").equals(gold)
    with pytest.raises(ScoreError, match=r"has no column 'example_id', 'prediction'.*--prediction-column"):
        read_predictions(tmp_path / "p.csv")
    pl.DataFrame({"example_id": ["a"], "prediction": [["74176"]]}).write_parquet(tmp_path / "lists.parquet")
    with pytest.raises(ScoreError, match="must be text"):
        read_predictions(tmp_path / "lists.parquet")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(ScoreError, match="must be one of"):
        read_predictions(tmp_path / "p.txt")


def test_cli_scores_with_a_baseline_and_writes_reports_without_text(run: Path, tmp_path: Path) -> None:
    gold = gold_predictions(run, tmp_path / "gold.jsonl")
    # a baseline that drops every secondary ICD code
    baseline = gold.with_columns(pl.col("prediction").str.replace(r"^([^,]+, [^,]*, [^,]+)(, .*)?$", "$1"))
    baseline.write_parquet(tmp_path / "baseline.parquet")
    result = CliRunner().invoke(
        app,
        [
            "score",
            str(run),
            str(tmp_path / "gold.jsonl"),
            "--baseline",
            str(tmp_path / "baseline.parquet"),
            "--json",
            "--bootstrap",
            "200",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    delta = summary["overall"]["deltas"]["model-baseline"]
    assert delta["icd_recall"]["value"] > 0 and delta["icd_recall"]["ci"][0] > 0  # the model is better, and surely
    assert delta["cpt_exact"] == {"value": 0.0, "ci": [0.0, 0.0]}
    assert json.loads((run / "reports" / "score.json").read_text())["overall"] == summary["overall"]
    html = (run / "reports" / "score.html").read_text()
    assert "<svg" in html and "model-baseline" in html
    # IDs and scores only: no report text, no output text
    texts = pl.read_parquet(run / "stages" / "leakage" / "part-*.parquet", columns=["report_text"])["report_text"]
    for text in texts.drop_nulls().head(200):
        for line in text.splitlines():
            if len(line) > 30:
                assert line not in html
    for output in gold["prediction"].head(50):
        assert output not in html
    refused = CliRunner().invoke(app, ["score", str(run), str(tmp_path / "nope.jsonl")])
    assert refused.exit_code == 2 and "predictions file not found" in refused.output
