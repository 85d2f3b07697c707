"""Cue rules that do not read capitalisation: names after titles, roles and relation words, institutions before a
facility word, site abbreviations after at/to/from (a presidio `LocalRecognizer`).

The pattern recognizers find "Dr. Healey" by its capital; these rules find "dr healey", "DR WHITE", "husband joe",
"per dr x", "kernan hosp", "followed at gh" in text of any case. A candidate word must look like a name: not a
stop word, not clinical, and (after a relation word or a preposition) not an ordinary English word either; after
a title the word is taken unless it is a stop word or clinical ("dr white" is a name, "dr to review" is not).
"""

from __future__ import annotations

import re

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS

from datakit.content import PLACEHOLDER_PATTERN
from datakit.deid.recognizers import local_result
from datakit.deid.truecase import Truecaser

NAME = "CaseInsensitiveCueRecognizer"
SCORE = 0.85
DOCTOR_CUES = r"dr|drs|doctor|prof"
TITLE_CUES = rf"{DOCTOR_CUES}|mr|mrs|ms|miss"
ROLE_CUES = (
    r"per|seen by|called|spoke with|spoke to|discussed with|d/w|paged|notified|signed by|dictated by|read by|"
    r"attending|resident|fellow|pcp|cc"
)
RELATION_CUES = (
    r"husband|wife|son|daughter|mother|father|mom|dad|sister|brother|friend|neighbor|neighbour|guardian|partner|"
    r"fiance|fiancee|niece|nephew|aunt|uncle|grandson|granddaughter|caregiver|boyfriend|girlfriend|spouse"
)
FACILITY_WORDS = (
    r"hospital|hosp|medical center|medical centre|med ctr|med center|clinic|rehabilitation center|"
    r"nursing home|nursing facility|health center|health system|imaging center|infirmary"
)
# short or common: the word before must look like a name ("calvert er", "witham health"; not "the er", "mental
# health")
UNIT_WORDS = r"er|ew|ed|icu|snf|ltac|rehab|health"
NAMED_WITH = frozenset({"health"})  # a unit word that is part of the institution's name ("Witham Health")
SITE_CUES = r"at|to|from|transfer(?:red)?(?: to| from)?|via"
GREETINGS = r"hi|hello|hey|thanks|thank you|bye|goodbye|good morning|good afternoon"
GENERIC = frozenset(  # words before a facility word, or after at/to/from, that name no place of their own
    "outside another other same this that our their local referring prior previous the a an any osh nearest "
    "nearby private rehab icu ccu micu sicu nicu picu snf ltac ltach er ed or pacu cath ems home floor ward unit "
    "clinic hospice".split()
)
_WORDS = r"[a-z][a-z'\-]*"
_DOCTOR = re.compile(rf"(?i)\b(?:{DOCTOR_CUES})\b\.?[ \t]+({_WORDS}(?:[ \t]+{_WORDS})?)")
_MISTER = re.compile(rf"(?i)\b(?:mr|mrs|ms|miss)\b\.?[ \t]+({_WORDS}(?:[ \t]+{_WORDS})?)")
_ROLE = re.compile(rf"(?i)\b(?:{ROLE_CUES})\b:?[ \t]+(?:(?:{TITLE_CUES})\b\.?[ \t]+)?({_WORDS}(?:[ \t]+{_WORDS})?)")
_RELATION = re.compile(rf"(?i)\b(?:{RELATION_CUES})(?:'s)?\b,?[ \t]+({_WORDS}(?:[ \t]+{_WORDS})?)")
# a name before a credential in any case ("elijah baptiste rn"); not "do" or "pa", which are words
_CREDENTIAL = re.compile(rf"(?i)\b((?:{_WORDS}[ \t]+)?{_WORDS})[ \t]*,?[ \t]+(?:md|np|rn|phd|lpn|crna|dds|pa-c)\b")
_FACILITY = re.compile(rf"(?i)((?:\b{_WORDS}\.?[ \t]+){{1,4}})(?:({FACILITY_WORDS})|({UNIT_WORDS}))\b")
_SITE = re.compile(rf"(?i)\b(?:{SITE_CUES})[ \t]+([a-z]{{2,5}})\b(?![\-/'])")
_PLACEHOLDER = re.compile(rf"(?i:{PLACEHOLDER_PATTERN})")
_DIALOGUE = re.compile(rf"(?i)(?:^|[\]:.?!,])[ \t]*(?:{GREETINGS})[ \t]*,?[ \t]+({_WORDS})\b")


# where a name goes, for the corpus vocabulary (engine.cued_names): every cue above, each with its name position
CUED_NAME = re.compile(
    rf"(?i)\b(?:{TITLE_CUES}|{ROLE_CUES}|{RELATION_CUES}|{GREETINGS})\b\.?,?:?[ \t]+"
    rf"(?:(?:{TITLE_CUES})\b\.?[ \t]+)?({_WORDS}(?:[ \t]+{_WORDS})?)"
    rf"|\b({_WORDS}),?[ \t]+(?:md|do|np|rn|pa-c|phd)\b"
    rf"|\b((?:{_WORDS}[ \t]+){{1,3}})(?:{FACILITY_WORDS}|{UNIT_WORDS})\b"
    rf"|\b(?:{SITE_CUES})[ \t]+([a-z]{{2,5}})\b"  # read by Polars (Rust regex: no look-around)
)
CUE_WORDS = frozenset(
    "dr drs doctor prof mr mrs ms miss md do np rn pa-c phd per cc attending resident fellow pcp hi hello hey thanks "
    "bye".split()
)


class CaseInsensitiveCueRecognizer(LocalRecognizer):
    """PERSON after titles, roles, relation words and greetings; ORGANIZATION for institutions and site
    abbreviations; in any case (reads the truecaser's word sets, not capitals)."""

    def __init__(self, truecaser: Truecaser, clinical: frozenset[str]) -> None:
        self.truecaser = truecaser
        self.clinical = clinical
        super().__init__(supported_entities=["PERSON", "ORGANIZATION"], name=NAME, supported_language="en")

    def load(self) -> None:
        return None

    def _plain(self, word: str) -> bool:
        w = word.lower().strip("'-.")
        clinical = w in self.clinical and w not in self.truecaser.names  # "mary", "smith": names, eponyms or not
        return not w or w in STOP_WORDS or clinical or bool(_PLACEHOLDER.fullmatch(w))

    def _ordinary(self, word: str) -> bool:
        w = word.lower().strip("'-.")
        return self._plain(word) or (w in self.truecaser.ordinary and w not in self.truecaser.names)

    def _common(self, word: str) -> bool:
        """Too frequent to be a name where a cue says one may follow ("husband called"; not "husband arjun")."""
        w = word.lower().strip("'-.")
        return self._plain(word) or (w in self.truecaser.common and w not in self.truecaser.names)

    def _name_words(self, text: str, m: re.Match[str], strict: bool, full: bool = False) -> list[tuple[int, int]]:
        """The leading words of group 1 that pass: after a doctor's title anything but a stop word or a
        placeholder ("dr white"); otherwise (strict) not clinical and not an ordinary word either."""
        out: list[tuple[int, int]] = []
        first = ""
        for i, w in enumerate(re.finditer(r"\S+", m.group(1))):
            word = w.group(0)
            low = word.lower().strip("'-.")
            if not low or low in STOP_WORDS or _PLACEHOLDER.fullmatch(low) or (strict and self._common(word)):
                break
            # a second word is a surname when it is capitalised (as written, or by the truecaser: no ordinary word)
            # or follows a known name and is no common word ("dr john young"; not "husband joe called"); after a
            # doctor's title (`full`: names are written whole there) a known name may be followed by any non-stop
            # word ("dr karen white")
            known = first in self.truecaser.names
            if i and not (word[:1].isupper() or (known and (full or not self._common(word)))):
                break
            out.append((m.start(1) + w.start(), m.start(1) + w.end()))
            first = low
        return out

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for rx, strict in ((_DOCTOR, False), (_MISTER, True), (_ROLE, True), (_RELATION, True), (_DIALOGUE, True)):
            for m in rx.finditer(text):
                found = self._name_words(text, m, strict, full=rx is _DOCTOR)
                if found:
                    results.append(self._result("PERSON", found[0][0], found[-1][1]))
        for m in _FACILITY.finditer(text):
            words = list(re.finditer(r"\S+", m.group(1)))
            keep: list[re.Match[str]] = []
            for w in reversed(words):  # the words right before the facility word, back to a stop/generic word
                low = w.group(0).lower().strip(".")
                if low in STOP_WORDS or low in GENERIC or any(c.isdigit() for c in low):
                    break
                keep.append(w)
            # "riverside general hospital", "kernan hosp", "calvert er"; not "pain clinic", "the er"
            named = [w for w in keep if not self._plain(w.group(0))]
            if named and (m.group(2) or not all(self._ordinary(w.group(0)) for w in named)):
                end = m.end() if m.group(2) or m.group(3).lower() in NAMED_WITH else m.start(3)
                results.append(self._result("ORGANIZATION", m.start(1) + keep[-1].start(), end))
        for m in _CREDENTIAL.finditer(text):  # the words before: the last one or two that look like a name
            words = [w for w in re.finditer(r"\S+", m.group(1)) if not self._plain(w.group(0))]
            if words and not all(self._common(w.group(0)) for w in words):
                results.append(self._result("PERSON", m.start(1) + words[0].start(), m.start(1) + words[-1].end()))
        for m in _SITE.finditer(text):
            word = m.group(1)
            # an abbreviation: upper case in the view (as written, or a short non-word), or no ordinary word
            if not self._plain(word) and word.lower() not in GENERIC and (word.isupper() or not self._common(word)):
                results.append(self._result("ORGANIZATION", m.start(1), m.end(1)))
        return results

    def _result(self, entity: str, start: int, end: int) -> RecognizerResult:
        return local_result(self, entity, start, end, SCORE, "cue word before it, in any case")
