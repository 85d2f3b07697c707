"""Wards, units, buildings and campuses named where notes move a patient (a presidio `LocalRecognizer`).

ICU and progress notes name the hospital's own places: "transfer to Quartermain 2", "c/o to quartermain 6",
"pt transferred to 209 Quartermain", "received from mazur campus", "bed on mackerer campus". A word is taken as
such a place name where

- a move (transfer, admit, return, send, call out, c/o) goes to or from it and a ward number, wing or floor follows
  ("quartermain 3", "kernan 2 north") or a room number comes before it ("to 209 quartermain");
- "campus" or "building" follows it ("mazur campus", "the Kernan building");

and it is no clinical, generic or frequent English word ("transfer to floor 5", "to ccu 2", "main campus" stay).
Reads the truecased view, like the other case-insensitive rules.
"""

from __future__ import annotations

from collections.abc import Callable

import regex
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS

from datakit.deid.cues import GENERIC, SERVICES
from datakit.deid.recognizers import local_result

NAME = "WardRecognizer"
SCORE = 0.8
_WORD = r"\p{L}[\p{L}'\-]*"
_MOVE = (
    r"(?:transfer(?:red|ed)?|trans|txr?(?:'d|d)?|admitted|admit|returned|return|sent|moved|going|go|went|back|"
    r"called[ \t]+out|c/o|brought|taken)"
)
_WARD = regex.compile(
    rf"(?i)\b{_MOVE}[ \t]+(?:back[ \t]+)?(?:to|from)[ \t]+(?:the[ \t]+)?"
    rf"(?:(?P<room>\d{{2,4}})[ \t]+(?P<after_room>{_WORD})\b(?![ \t]*\d)"
    rf"|(?P<ward>{_WORD})[ \t]*(?:\d{{1,2}}[a-z]?|[1-9](?:st|nd|rd|th)?[ \t]+(?:north|south|east|west))\b)"
)
_PLACE_WORD = regex.compile(rf"(?i)\b(?P<name>{_WORD}(?:[ \t]+{_WORD})?)[ \t]+(?:campus|building|bldg|pavilion)\b")
# where a ward name goes, for the corpus vocabulary (engine.cued_names; Polars' Rust regex, no look-around): a
# local name that recurs in every note ("quartermain") is a name, not the corpus's vocabulary
WARD_SHAPE = (
    r"(?i)\b(?:transfer(?:red|ed)?|admitted|returned|sent|moved|c/o)[ \t]+(?:back[ \t]+)?(?:to|from)[ \t]+"
    r"(?:\d{2,4}[ \t]+)?[a-z][a-z'\-]+(?:[ \t]*\d{1,2}\b)?|\b[a-z][a-z'\-]+[ \t]+(?:campus|building|pavilion)\b"
)
MOVE_WORDS = frozenset("transfer transferred transfered admitted returned sent moved back to from the".split())
UNITS = frozenset(
    "icu ccu micu sicu nicu picu csru cvicu tsicu ctu pacu ed er ew or floor ward unit room rm bed bay pod tele "
    "telemetry step stepdown rehab clinic cath lab main north south east west new old this that our the".split()
)


class WardRecognizer(LocalRecognizer):
    """LOCATION for a ward, building or campus named where a patient is moved (see the module's docstring)."""

    def __init__(self, is_word: Callable[[str], bool]) -> None:
        self.is_word = is_word  # a clinical, frequent English or corpus word: names no place of its own
        super().__init__(supported_entities=["LOCATION"], name=NAME, supported_language="en")

    def load(self) -> None:
        return None

    def _named(self, word: str) -> bool:
        low = word.lower().strip("'-")
        return bool(low) and not (
            low in STOP_WORDS or low in GENERIC or low in SERVICES or low in UNITS or self.is_word(low)
        )

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results = []
        for m in _WARD.finditer(text):
            group = "after_room" if m.group("after_room") else "ward"
            if self._named(m.group(group)):
                results.append(local_result(self, "LOCATION", m.start(group), m.end(group), SCORE, "ward moved to"))
        for m in _PLACE_WORD.finditer(text):
            words = list(regex.finditer(_WORD, m.group("name")))
            named = [w for w in words if self._named(w.group(0))]
            if named and self._named(words[-1].group(0)):
                start = m.start("name") + (words[0] if self._named(words[0].group(0)) else words[-1]).start()
                results.append(local_result(self, "LOCATION", start, m.end("name"), SCORE, "campus or building"))
        return results
