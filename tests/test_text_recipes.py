"""The generic text-to-text task (`task = "text"`) and the recipes beyond radiology: recipe validation, the JSON
and XML readers, the hospital-course recipe on a synthetic fixture, and the ACI-Bench, MTS-Dialog, PubMedQA and
MedQuAD recipes on subsets of the real data (skipped without ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from datakit.errors import RecipeError
from datakit.evaluation import qa_templates
from datakit.evaluation.dialogue_names import aci_names, score
from datakit.keys import load_key
from datakit.recipe import FilesSource, load_recipe, recipe_from_dict
from datakit.rundir import RunDir
from datakit.shards.verify import verify
from datakit.sources.files import read_files
from tests.conftest import ROOT, run_recipe
from tests.fixtures.hospital_stays import write_hospital_stays

RECIPES = ROOT / "recipes"


def _text_recipe(**over: object) -> dict:
    data: dict = {
        "name": "t",
        "task": "text",
        "source": {"kind": "files", "path": "x.csv", "columns": {"case_id": "id", "question": "q"}},
        "text": {"inputs": [{"column": "question", "label": "Question"}], "target": "answer"},
        "prompt": {"system": "Answer."},
    }
    data.update(over)
    return data


def test_text_recipe_defaults_and_errors() -> None:
    r = recipe_from_dict(_text_recipe())
    assert r.extra_columns() == ("question", "answer")
    assert r.required_columns() == ("case_id", "question", "answer")
    assert r.deid.text_columns is None  # every text column is de-identified unless the recipe lists them
    assert r.leakage.fields == ("question", "answer")
    with pytest.raises(RecipeError, match="go together"):
        recipe_from_dict(_text_recipe(text=None))
    with pytest.raises(RecipeError, match="used by datakit"):
        recipe_from_dict(_text_recipe(text={"inputs": [{"column": "split", "label": "S"}], "target": "answer"}))
    with pytest.raises(RecipeError, match="non-text schema column"):
        recipe_from_dict(_text_recipe(text={"inputs": [{"column": "exam_date", "label": "D"}], "target": "answer"}))
    bad_source = {"kind": "files", "path": "x.csv", "columns": {"case_id": "id", "questoin": "q"}}
    with pytest.raises(RecipeError, match=r"did you mean 'source\.columns\.question'"):
        recipe_from_dict(_text_recipe(source=bad_source))
    with pytest.raises(RecipeError, match=r"source_column and split\.source_splits"):
        recipe_from_dict(_text_recipe(split={"source_column": "origin"}))
    for name in ("visit-note-aci", "note-section-mts", "medical-qa", "medical-qa-medquad", "hospital-course"):
        assert load_recipe(RECIPES / f"{name}.toml").task == "text"


def test_json_xml_readers_templates_and_file_column(tmp_path: Path) -> None:
    data = {"111": {"Q": "Does it work?", "CTX": ["First part.", "Second part."], "D": "yes", "L": "It does."}}
    (tmp_path / "items.json").write_text(json.dumps(data))
    cfg = FilesSource(
        path=str(tmp_path / "items.json"),
        columns={"case_id": "_key"},
        templates={"report_text": "{Q}\n{CTX}", "impression": "{D}. {L}"},
        file_column="origin",
    )
    out = read_files(cfg, ("origin",))
    row = out.row(0, named=True)
    assert row["case_id"] == "111" and row["origin"] == "items"
    assert row["report_text"] == "Does it work?\nFirst part.\n\nSecond part." and row["impression"] == "yes. It does."
    xml = (
        '<?xml version="1.0"?><Document id="7" source="NIDDK"><Focus>Acromegaly</Focus><QAPairs>'
        '<QAPair pid="1"><Question qid="7-1" qtype="information">What is (are) Acromegaly ?</Question>'
        "<Answer>A hormonal disorder.</Answer></QAPair>"
        '<QAPair pid="2"><Question qid="7-2" qtype="symptoms">What are the symptoms of Acromegaly ?</Question>'
        "<Answer>Large hands.</Answer></QAPair></QAPairs></Document>"
    )
    (tmp_path / "doc.xml").write_text(xml)
    spec = {
        "record": "QAPairs/QAPair",
        "fields": {"qid": "Question/@qid", "question": "Question", "answer": "Answer"},
        "document": {"focus": "Focus", "origin": "@source"},
    }
    cfg = FilesSource.model_validate(
        {"path": str(tmp_path / "doc.xml"), "format": "xml", "xml": spec, "templates": {"case_id": "{origin}:{qid}"}}
    )
    out = read_files(cfg, ("question", "answer", "focus"))
    assert out["case_id"].to_list() == ["NIDDK:7-1", "NIDDK:7-2"]
    assert out["answer"].to_list() == ["A hormonal disorder.", "Large hands."]
    assert out["focus"].to_list() == ["Acromegaly", "Acromegaly"]


def _examples(run: Path) -> pl.DataFrame:
    return pl.read_parquet(RunDir(run).stage_dir("assemble") / "part-*.parquet")


def test_hospital_course_recipe_on_the_synthetic_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAKIT_SECRET", "a test secret that is long enough")
    stays = write_hospital_stays(tmp_path / "stays.parquet", n=60)
    # 60 stays the linkage puts in four groups (40, 14, 4 and 2 stays of templated notes): eval needs room
    split = ["split.train=0.6", "split.val=0.2", "split.test=0.2", "split.max_eval_group_fraction=0.25", "seed=1"]
    recipe = load_recipe(RECIPES / "hospital-course.toml", [f"source.path={stays}", "shards.world_size=1", *split])
    run_recipe(recipe, tmp_path / "run")
    verify(tmp_path / "run" / "shards")
    examples = _examples(tmp_path / "run")
    assert examples.height == 60
    user = examples["prompt"].list.get(1).struct.field("content")
    assert user.str.contains("### Stay to summarise\nNotes of the stay:\nADMISSION H&P").all()
    completion = examples["completion"].list.get(0).struct.field("content")
    assert completion.str.starts_with("The patient is a").all()
    source = pl.read_parquet(stays)
    key = load_key(recipe)  # case ids are keyed by default: the test keys the source's to find them

    def keyed(ids: pl.Series) -> pl.Series:
        return key.hmac_hex(ids.cast(pl.String), "deid:case_id", 32)

    # each stay's planted patient name (the admission note's first words) is gone from its own prompt
    planted = source.select(
        keyed(source["stay_id"]).alias("case_id"),
        pl.col("notes").list.first().str.extract(r"\n(\w+ \w+) is a").alias("name"),
    )
    own = examples.select("case_id", user.str.split("### Stay to summarise").list.last().alias("own")).join(
        planted, on="case_id"
    )
    assert own.height == 60 and own["name"].null_count() == 0
    assert not own.select(pl.col("own").str.contains(pl.col("name"), literal=True)).to_series().any()
    first_names = own.select(pl.col("own").str.contains(pl.col("name").str.extract(r"^(\w+)"), literal=True))
    assert not first_names.to_series().any()  # the consult's "Asked to see Martha" too
    leak = pl.read_parquet(RunDir(tmp_path / "run").stage_dir("leakage") / "part-*.parquet")
    group_of = dict(zip(leak["case_id"], leak["leakage_group"], strict=True))
    original, copy = keyed(pl.Series([source["stay_id"][0], "S-COPY"])).to_list()
    assert group_of[copy] == group_of[original]  # the edited copy is grouped with its original
    assert set(leak["split"]) == {"train", "val", "test"}
    per_patient = leak.group_by("patient_id").agg(pl.col("split").n_unique())
    assert per_patient["split"].max() == 1  # a patient's stays never straddle splits


@pytest.fixture(scope="module")
def aci_subset(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 train, 4 valid and 4 test-1 ACI-Bench encounters, plus one training record that is a test conversation
    with its greeting changed (the benchmark's split must move it to test)."""
    aci = real_data / "aci_bench"
    if not aci.is_dir():
        pytest.skip("ACI-Bench is not in ../shared/real_data")
    folder = tmp_path_factory.mktemp("aci")
    test = pl.read_csv(aci / "clinicalnlp_taskB_test1.csv").head(4)
    copy = test.head(1).with_columns(
        pl.lit("D2N-COPY").alias("encounter_id"), pl.col("dialogue").str.replace(r"^\[doctor\] \w+", "[doctor] hello")
    )
    pl.concat([pl.read_csv(aci / "train.csv").head(16), copy]).write_csv(folder / "train.csv")
    pl.read_csv(aci / "valid.csv").head(4).write_csv(folder / "valid.csv")
    test.write_csv(folder / "clinicalnlp_taskB_test1.csv")
    return folder


def test_visit_note_recipe_keeps_the_benchmark_splits(aci_subset: Path, real_data: Path, tmp_path: Path) -> None:
    recipe = load_recipe(
        RECIPES / "visit-note-aci.toml",
        [f"source.path={aci_subset}/*.csv", "keys.allow_demo_for_real_data=true", "deid.residual_scan_share=1"],
    )
    run = tmp_path / "run"
    run_recipe(recipe, run)
    verify(run / "shards")
    leak = pl.read_parquet(RunDir(run).stage_dir("leakage") / "part-*.parquet")
    split = dict(zip(leak["case_id"], leak["split"], strict=True))
    test_ids = pl.read_csv(aci_subset / "clinicalnlp_taskB_test1.csv")["encounter_id"].to_list()
    kept_test = [i for i in test_ids if i in split]
    assert kept_test and all(split[i] == "test" for i in kept_test)
    assert split["D2N-COPY"] == "test"  # a training conversation linked to a test one joins it
    valid_ids = [i for i in pl.read_csv(aci_subset / "valid.csv")["encounter_id"] if i in split]
    assert valid_ids and all(split[i] == "val" for i in valid_ids)
    cert = json.loads((run / "reports" / "certificate.json").read_text())
    assert cert["passed"] and cert["split_mode"] == "source_split"
    assert cert["source_split"]["records"]["train"]["test"] >= 1
    examples = _examples(run)
    tagged = examples["tags"].list.contains("section:chief_complaint")
    written = examples["completion"].list.get(0).struct.field("content").str.contains(r"(?m)^CHIEF COMPLAINT\s*$")
    assert tagged.sum() > examples.height / 2 and (tagged == written).all()
    # names said in the conversations, scored against the benchmark's metadata
    pulled = pl.read_parquet(RunDir(run).stage_dir("pull") / "part-*.parquet")
    deid = pl.read_parquet(RunDir(run).stage_dir("deid") / "part-*.parquet")
    result = score(pulled, deid, aci_names(real_data / "aci_bench"), ["dialogue", "note"])
    assert result["occurrences_before"] > 50
    assert result["removed"] >= 0.95
    assert result["speaker_tags"]["dialogue"]["before"] == result["speaker_tags"]["dialogue"]["after"] > 0


def test_note_section_recipe_ids_and_splits(real_data: Path, tmp_path: Path) -> None:
    mts = real_data / "mts_dialog"
    if not mts.is_dir():
        pytest.skip("MTS-Dialog is not in ../shared/real_data")
    folder = tmp_path / "mts"
    folder.mkdir()
    for name, n in (
        ("MTS-Dialog-TrainingSet", 30),
        ("MTS-Dialog-ValidationSet", 6),
        ("MTS-Dialog-TestSet-1-MEDIQA-Chat-2023", 6),
    ):
        pl.read_csv(mts / f"{name}.csv", infer_schema=False).head(n).write_csv(folder / f"{name}.csv")
    recipe = load_recipe(
        RECIPES / "note-section-mts.toml",
        [f"source.path={folder}/MTS-Dialog-*.csv", "keys.allow_demo_for_real_data=true"],
    )
    run = tmp_path / "run"
    run_recipe(recipe, run)
    verify(run / "shards")
    examples = _examples(run)
    assert examples.height == 42  # ids restart per file: "<file>:<ID>" keeps all
    assert examples["case_id"].str.starts_with("MTS-Dialog-TestSet-1-MEDIQA-Chat-2023:").sum() == 6
    leak = pl.read_parquet(RunDir(run).stage_dir("leakage") / "part-*.parquet")
    test_rows = leak.filter(pl.col("source_file") == "MTS-Dialog-TestSet-1-MEDIQA-Chat-2023")
    assert (test_rows["split"] == "test").all()
    user = examples["prompt"].list.get(1).struct.field("content")
    assert user.str.contains(r"### Write this section of the note\nSection: [^\n]+\n\nConversation:\n").all()


def test_medical_qa_recipe_pins_the_official_test_split(real_data: Path, tmp_path: Path) -> None:
    qa = real_data / "pubmedqa"
    if not qa.is_dir():
        pytest.skip("PubMedQA is not in ../shared/real_data")
    items = json.loads((qa / "ori_pqal.json").read_text())
    test_ids = set(json.loads((qa / "test_ground_truth.json").read_text()))
    keys = sorted(items)
    subset = [k for k in keys if k in test_ids][:15] + [k for k in keys if k not in test_ids][:30]
    (tmp_path / "pqal.json").write_text(json.dumps({k: items[k] for k in subset}))
    recipe = load_recipe(
        RECIPES / "medical-qa.toml",
        [f"source.path={tmp_path / 'pqal.json'}", "keys.allow_demo_for_real_data=true"],
    )
    # the external eval set stays the full official test split (paths relative to the repository root)
    raw = recipe.model_dump()
    ext = raw["leakage"]["external_eval"][0]
    ext["path"], ext["ids_path"] = str(qa / "ori_pqal.json"), str(qa / "test_ground_truth.json")
    recipe = recipe_from_dict(raw)
    run = tmp_path / "run"
    run_recipe(recipe, run)
    verify(run / "shards")
    leak = pl.read_parquet(RunDir(run).stage_dir("leakage") / "part-*.parquet")
    split = dict(zip(leak["case_id"], leak["split"], strict=True))
    assert all(split[k] == "test" for k in subset[:15] if k in split)
    assert sum(split[k] == "test" for k in subset[15:] if k in split) == 0
    cert = json.loads((run / "reports" / "certificate.json").read_text())
    assert cert["passed"] and cert["external_eval"]["contaminated_cases"] >= 14
    completion = _examples(run)["completion"].list.get(0).struct.field("content")
    assert completion.str.contains(r"^(yes|no|maybe)\. ").all()


COPIED_ANSWER_DOCUMENTS = (  # MedQuAD documents holding an answer that another document holds word for word
    "9_CDC_QA/0000319",
    "9_CDC_QA/0000381",
    "5_NIDDK_QA/0000027",
    "5_NIDDK_QA/0000033",
    "5_NIDDK_QA/0000037",
    "5_NIDDK_QA/0000070",
    "5_NIDDK_QA/0000071",
    "5_NIDDK_QA/0000146",
    "5_NIDDK_QA/0000148",
    "5_NIDDK_QA/0000150",
    "5_NIDDK_QA/0000162",
    "5_NIDDK_QA/0000164",
    "5_NIDDK_QA/0000184",
    "5_NIDDK_QA/0000190",
    "5_NIDDK_QA/0000194",
    "5_NIDDK_QA/0000195",
    "5_NIDDK_QA/0000196",
    "5_NIDDK_QA/0000201",
    "5_NIDDK_QA/0000203",
    "5_NIDDK_QA/0000214",
    "5_NIDDK_QA/0000215",
    "5_NIDDK_QA/0000221",
)


def test_medquad_question_templates_stay_apart_and_copied_answers_group(real_data: Path, tmp_path: Path) -> None:
    medquad = real_data / "medquad"
    if not medquad.is_dir():
        pytest.skip("MedQuAD is not in ../shared/real_data")
    others = sorted(medquad.glob("5_NIDDK_QA/*.xml"))[:12] + sorted(medquad.glob("9_CDC_QA/*.xml"))[:12]
    chosen = {medquad / f"{d}.xml" for d in COPIED_ANSWER_DOCUMENTS} | set(others)
    for path in chosen:
        target = tmp_path / "medquad" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    recipe = load_recipe(
        RECIPES / "medical-qa-medquad.toml",
        [f"source.path={tmp_path / 'medquad'}/*/*.xml", "keys.allow_demo_for_real_data=true"],
    )
    run = tmp_path / "run"
    run_recipe(recipe, run, only=["pull", "deid", "leakage"])
    assert isinstance(recipe.source, FilesSource)
    raw = read_files(recipe.source, (*recipe.extra_columns(), "focus"))
    items = raw.select("case_id", "question", "answer", "focus", pl.col("patient_id").alias("document"))
    result = qa_templates.score(items, run)
    copies, templates = result["copied_answer_pairs"], result["template_pairs"]
    assert copies["pairs"] >= 20 and copies["grouped"] == copies["pairs"] and copies["straddling_train_eval"] == 0
    # templated questions alone link nothing: the few template pairs linked share their answers' words
    assert templates["pairs"] > 5000 and templates["linked"] <= 0.01 * templates["pairs"]
    assert templates["linked_with_overlapping_answers"] >= 0.8 * templates["linked"]
    leak = pl.read_parquet(RunDir(run).stage_dir("leakage") / "part-*.parquet")
    per_document = leak.group_by("patient_id").agg(pl.col("split").n_unique())
    assert per_document["split"].max() == 1  # a document's questions never straddle splits
