from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from datakit.content import normalise_text


def norm(*texts: str) -> list[str]:
    return pl.select(normalise_text(pl.lit(pl.Series(list(texts))))).to_series().to_list()


def test_whitespace_case_punctuation_spacing_and_placeholders_fold() -> None:
    a, b = norm("No  pleural effusion .\n5mm nodule, [NAME] seen", "no pleural EFFUSION. 5 mm nodule , <PERSON> seen")
    assert a == b
    assert norm("XXXX XXXX of the chest", "[**Last Name**] of the chest") == ["[phi] of the chest"] * 2


def test_clinical_content_is_kept() -> None:
    pairs = [
        ("5 mm nodule", "12 mm nodule"),
        ("left lower lobe", "right lower lobe"),
        ("no effusion", "effusion"),
        ("disc bulge at L4-5", "disc bulge at L5-S1"),
        ("3.2 x 1.1 cm", "3.2 x 1.7 cm"),
        ("C5-C6", "C6-C7"),
    ]
    for x, y in pairs:
        nx, ny = norm(x, y)
        assert nx != ny, (x, y)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_normalisation_is_idempotent_and_never_fails(text: str) -> None:
    once = norm(text)[0]
    assert norm(once)[0] == once


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["no", "left", "right", "effusion", "5", "12", "mm", "L4-5", "nodule", "."]), max_size=12),
    st.sampled_from([" ", "  ", "\n", "\t "]),
)
def test_spacing_and_case_never_change_the_normal_form(words: list[str], sep: str) -> None:
    plain = " ".join(words)
    assert norm(plain)[0] == norm(sep.join(w.upper() for w in words))[0]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 999), st.integers(0, 999))
def test_different_numbers_never_collide(a: int, b: int) -> None:
    na, nb = norm(f"nodule {a} mm", f"nodule {b} mm")
    assert (na == nb) == (a == b)
