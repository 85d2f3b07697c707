"""The words layer: canonical text, IDF-weighted containment, complete candidates, mutual links."""

from __future__ import annotations

import itertools
import random

import numpy as np
import polars as pl

from datakit.evaluation.paraphrase_leaks import CLASSES, edit, header_signoff
from datakit.leakage import words
from datakit.leakage.canonical import canonical_text, masked
from datakit.recipe import WordsConfig


def canon(*texts: str, lexicon: bool = True) -> list[str]:
    return pl.select(canonical_text(pl.Series("t", texts), lexicon)).to_series().to_list()


def test_canonical_text_writes_synonyms_one_way_and_keeps_what_codes_depend_on() -> None:
    a, b = canon(
        "No acute cardiopulmonary process. Small left PTX, unchanged.",
        "NO ACUTE CARDIOPULMONARY ABNORMALITY.  small lt pneumothorax, stable.",
    )
    assert a == b
    left, right, neg, pos = canon("left effusion", "right effusion", "no effusion", "effusion")
    assert left != right and neg != pos  # laterality and negation survive
    five, twelve = canon("nodule 5 mm", "nodule 12 mm")
    assert five != twelve  # measurements survive


def test_canonical_text_removes_dictation_boilerplate() -> None:
    rng = random.Random(3)
    body = "The lungs are clear. No pleural effusion. Heart size is normal."
    for _ in range(8):
        (copy,) = canon(header_signoff(body, rng, "CHEST 2 VIEWS"))
        (plain,) = canon(body)
        # the report survives whole; what remains of header and sign-off is a few words (the exam name, a name
        # after a dash the patterns do not know)
        assert plain in copy and len(copy.split()) - len(plain.split()) <= 6, copy


def corpus() -> list[str]:
    rng = random.Random(5)
    findings = ["nodule", "effusion", "atelectasis", "granuloma", "pneumothorax", "fracture", "edema", "mass"]
    sites = ["right upper lobe", "left lower lobe", "right base", "left apex", "lingula", "hilum"]
    texts = []
    for i in range(120):
        f = rng.sample(findings, 2)
        texts.append(
            f"Indication cough {i % 7}. There is a {f[0]} in the {rng.choice(sites)}. "
            f"Patient {i} specific word zx{i}q and qv{i}k. Mild {f[1]}. Heart size normal."
        )
    return texts


def test_candidates_are_complete_against_brute_force() -> None:
    texts = canon(*corpus())
    index = words.build_index(pl.Series(texts), specific_df=0.05)
    cfg = WordsConfig(threshold=0.3, candidate_floor=0.3)
    found = {(a, b) for a, b in words.linked_pairs(index, cfg, 0.0).select("a", "b").iter_rows()}
    pairs = np.array(list(itertools.combinations(range(len(texts)), 2)))
    cand = index.is_candidate(pairs[:, 0], pairs[:, 1], cfg.candidate_floor)
    assert found == {(int(a), int(b)) for a, b in pairs[cand]}


def test_edited_copies_are_contained_and_different_reports_are_not() -> None:
    base = corpus()
    rng = random.Random(9)
    copies = [edit(CLASSES[i % len(CLASSES)], base[i], rng)[0] for i in range(40)]
    texts = canon(*base, *copies)
    index = words.build_index(pl.Series(texts), specific_df=0.05)
    cfg = WordsConfig(enabled=True)
    a = np.arange(40)
    linked, cont = index.linked(a, a + len(base), cfg)
    assert linked.all(), cont[~linked]
    others, _ = index.linked(a, (a + 1) % len(base), cfg)
    assert not others.any()


def test_only_mutual_links_bind() -> None:
    # a star: text 0 is the closest text of 1..4, but only two of them are among 0's two closest
    pairs = pl.DataFrame(
        {"a": [0, 0, 0, 0], "b": [1, 2, 3, 4], "containment": [0.99, 0.95, 0.9, 0.85]},
        schema={"a": pl.UInt32, "b": pl.UInt32, "containment": pl.Float32},
    )
    assert words.mutual_top(pairs, 2).to_list() == [True, True, False, False]
    assert words.mutual_top(pairs, 4).to_list() == [True] * 4
    # equal containment shares a rank
    tied = pairs.with_columns(pl.lit(0.9, pl.Float32).alias("containment"))
    assert words.mutual_top(tied, 1).to_list() == [True] * 4


def test_masked_writes_every_listed_replacement_as_phi() -> None:
    frame = pl.DataFrame(
        {
            "report_text": ["Seen by Ann Lee on 3/4. Lungs clear.", "No spans here."],
            "phi_spans": [
                [{"column": "report_text", "start": 8, "end": 15}, {"column": "report_text", "start": 19, "end": 22}],
                [],
            ],
        }
    )
    assert masked(frame, "report_text").to_list() == ["Seen by  [phi]  on  [phi] . Lungs clear.", "No spans here."]
    assert masked(frame.drop("phi_spans"), "report_text").to_list() == frame["report_text"].to_list()
