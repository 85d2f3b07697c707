"""A truecased view of case-less text, with the same offsets: detection must not depend on capitalisation.

Many exports write whole notes in ALL CAPITALS (legacy RIS, dictation, nursing systems) or all lower case. There
capitalisation says nothing about names, and every recognizer, the gazetteer and the NER gate that read it fail
(measured on planted IU reports: 72% of PHI found in capitals, 53% in lower case, against 100% as written).

For each line with letters of one case only, this module writes a view in which ordinary words are lower case and
the others are capitalised, character for character (same length, same offsets), so the recognizers, the
gazetteer and NER read it as they read mixed-case prose; the spans they find are applied to the original text.
Lines that mix cases are left exactly as written.

- **Ordinary** (lower case in the view): English words of at least `ORDINARY_ZIPF` frequency (wordfreq, data in the
  package) that are not census names, the lexicon (ICD-10-CM description words, words the corpus writes in lower
  case in mixed-case lines, words frequent across its case-less lines that are not census names), the clinical
  allow-list, and words of a clinical or derived shape (`CLINICAL_SHAPE`: "-itis", "-ectomy", "-ular", "-ly",
  "hyper-", "peri-"...).
- **Names** (capitalised): US census first names (the `names` package) unless the word is a very common English
  word ("will", "may"); census last names unless a very common word ("white", "hill") or in the lexicon ("bone");
  and every word that is not ordinary (rare words, surnames not in the census, towns). A short word (up to
  `ACRONYM_LETTERS`) that is neither is an acronym ("MVC", "bmt") and is upper case, as acronyms are in prose.
- **Titles** ("dr", "mrs") are capitalised; credentials ("md", "rn") and letter+digit tokens (IDs such as
  "a123456789") are upper case; a two-letter US state before a ZIP code is upper case.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

from datakit.deid.shorthand import SHORTHAND
from datakit.deid.wordcache import cached_words, package_version

ORDINARY_ZIPF = 3.0  # ~1 per million words: "bedside" 3.35, "unremarkable" 2.83, "healey" 2.90, "calvert" 3.10
COMMON_ZIPF = 4.5  # a word this frequent is not a name after a relation word or greeting ("called", "is", "home")
# A census name is a name in the view when it is rare as an English word, or a frequent name that is not a very
# common word: first names below zipf 4.0 ("martha" 3.98), or in the top 200 and below 5.5 ("john" 5.38, "mary"
# 4.78; not "will" 6.45, "hope" 5.44 at rank 426); surnames below zipf 3.0 ("healey" 2.90), or in the top 10,000
# and below 4.0 ("castillo" 3.14 at 206, "brennan" 3.65; not "ward" 4.37, "bone" 4.47, "reveal" at 60,817).
FIRST_NAME = (4.0, 200, 5.5)  # (any rank below this zipf, top ranks, below this zipf)
SURNAME = (3.0, 10_000, 4.0)
ACRONYM_LETTERS = 3  # a short word that is neither ordinary nor a name reads as an acronym ("MVC", "bmt"): upper
WORD_CACHE = 200_000  # words the view remembers before it starts again
MIN_LETTERS = 6  # a line needs this many letters before its case is read as a profile
TITLES = frozenset({"dr", "drs", "mr", "mrs", "ms", "miss", "doctor", "prof", "sr", "jr"})
UPPER = frozenset({"md", "np", "rn", "phd", "mbbs", "dds", "dpm", "lpn", "crna", "pa-c", "mrn", "dob", "ssn", "acc"})
# the two-letter words of English prose; any other two-letter word is an abbreviation ("gh", "pt"), not ordinary
TWO_LETTER_WORDS = frozenset(
    "am an as at be by do go he hi if in is it me my no of oh ok on or so to up us we ye".split()
)
STATES = frozenset(
    "al ak az ar ca co ct de fl ga hi id il in ia ks ky la me md ma mi mn ms mo mt ne nv nh nj nm ny nc nd oh ok or "
    "pa ri sc sd tn tx ut vt va wa wv wi wy dc".split()
)
_WORD = re.compile(r"[A-Za-z0-9]*\d[A-Za-z0-9]*|[A-Za-z][A-Za-z'\-]*")
# clinical and derived-word shapes: a word of this shape is ordinary unless it is a census name
CLINICAL_SHAPE = re.compile(
    r"^(?:hyper|hypo|peri|para|sub|supra|infra|inter|intra|retro|post|pre|bi|hemi|multi|non|mid|anti|trans)[a-z]{3,}$"
    r"|^[a-z]{4,}(?:itis|osis|oses|emia|ectomy|ectomies|otomy|ostomy|plasty|graph|graphs|graphy|graphic|grams?|scopy|"
    r"pathy|oma|omas|omata|algia|ular|ularity|ary|ous|ical|ically|ally|ity|ities|ation|ations|ment|ments|ness|ive|"
    r"ized|ised|ing|ed|ly|iform|oid|ectasis|ectases|iasis|cele|plegia|trophy|lysis|ology)$"
)
STREET = re.compile(
    r"(?i)\b\d{1,6}[ \t]+((?:[nsew]\.?[ \t]+)?(?:[a-z]+[ \t]+){1,3}(?:street|st|avenue|ave|road|rd|boulevard|blvd|"
    r"lane|ln|drive|dr|way|court|ct|place|pl|terrace|parkway|pkwy|highway|hwy|circle|cir|trail|pike)\b\.?)"
    r"(?=[ \t]*(?:[,;\n]|$|(?:apt|suite|ste|unit|#)))"  # the suffix ends the address: not "0800 pt seen by dr x"
)
ORDINAL = re.compile(r"\d+(?:st|nd|rd|th)")
# what speech-to-text transcripts and their speaker tags write ("wan na", "gon na", "lem me", "guest_clinician:")
TRANSCRIPT = frozenset(
    "wan gon na ta lem gim kinda sorta gotta gonna wanna yeah yep nope uh um hmm mm mhm huh uh-huh clinician".split()
)
CONTRACTIONS = frozenset({"t", "s", "re", "ve", "ll", "d", "m"})  # "don't", "it's", "we're", "i've", "we'll"
CONTRACTION_BASES = frozenset(
    "don doesn didn isn wasn weren aren haven hasn hadn couldn wouldn shouldn won can".split()
)
PLURALS = (("ies", "y"), ("ses", "sis"), ("es", ""), ("s", ""))  # "arteries", "metastases", "rashes", "cysts"
PLACE_ZIPF = 4.0  # a gazetteer place this rare as a word is capitalised ("indianapolis", "fort wayne"; not "normal")
_STATE_ZIP = re.compile(r"\b[A-Za-z]{2}(?=[ \t]+\d{5}(?:-\d{4})?\b)")


WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")  # a word of letters (the de-identifier's word)


def line_case(line: str) -> str:
    """'upper' or 'lower' when the line's letters (at least MIN_LETTERS) are all of one case, else 'mixed'."""
    how = "upper" if line.isupper() else "lower" if line.islower() else "mixed"  # str methods: C speed
    return how if how == "mixed" or sum(map(str.isalpha, line)) >= MIN_LETTERS else "mixed"


def caseless_lines(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of `text` whose letters are all of one case."""
    offset = 0
    for line in text.split("\n"):
        if line_case(line) != "mixed":
            yield offset, offset + len(line)
        offset += len(line) + 1


def in_vocabulary(low: str, words: frozenset[str]) -> bool:
    """A lower-case word is in `words`, or is a contraction ("don't", "we'll") or the plural ("osteophytes",
    "rashes", "metastases") of one."""
    if low in words:
        return True
    base, _, tail = low.partition("'")
    if tail in CONTRACTIONS:
        return base in words or base in CONTRACTION_BASES
    return len(low) > 4 and any(low.endswith(s) and low[: -len(s)] + r in words for s, r in PLURALS)


def _same_length(word: str, new: str) -> str:
    return new if len(new) == len(word) else word


def _capitalised(text: str) -> str:
    return _same_length(text, re.sub(r"[A-Za-z]+", lambda m: m.group(0)[:1].upper() + m.group(0)[1:].lower(), text))


class Truecaser:
    """Writes the truecased view of a text; `ordinary` and `names` are lower-case word sets."""

    def __init__(
        self,
        ordinary: frozenset[str],
        names: frozenset[str],
        places: frozenset[str] = frozenset(),
        common: frozenset[str] = frozenset(),
    ) -> None:
        self.ordinary = ordinary
        self.common = common  # the most frequent English words (COMMON_ZIPF)
        self.names = names
        self.places = places  # lower case, as "fort wayne"
        self.place_words = max((p.count(" ") + 1 for p in places), default=0)
        self.place_starts = frozenset(p.split(" ", 1)[0] for p in places if " " in p)  # "fort" of "fort wayne"
        self.place_words_any = self.place_starts | frozenset(p for p in places if " " not in p)
        self._seen: dict[str, str] = {}

    def is_name_or_place(self, word: str) -> bool:
        low = word.lower()
        return low in self.names or low in self.places

    def is_ordinary(self, low: str) -> bool:
        """A lower-case word is ordinary: in the set, a contraction of one ("don't", "we'll"), or the plural of one
        ("osteophytes", "rashes", "metastases")."""
        return in_vocabulary(low, self.ordinary)

    def word(self, word: str) -> str:
        """The word as the view writes it (memoised: the words of a corpus repeat)."""
        new = self._seen.get(word)
        if new is None:
            if len(self._seen) > WORD_CACHE:
                self._seen.clear()
            new = self._seen[word] = self._word(word)
        return new

    def _word(self, word: str) -> str:
        low = word.lower()
        if any(c.isdigit() for c in word):  # ids upper ("a123456789"), ordinals lower ("13th", "2nd")
            return _same_length(word, low if ORDINAL.fullmatch(low) else word.upper())
        if low in UPPER:
            return _same_length(word, word.upper())
        if low in TITLES or low in self.names:
            parts = re.split(r"([\-'])", low)
            return _same_length(word, "".join(p[:1].upper() + p[1:] for p in parts))
        ordinary = self.is_ordinary(low)
        if not ordinary and len(low) <= ACRONYM_LETTERS:
            return _same_length(word, word.upper())
        if not ordinary and not CLINICAL_SHAPE.match(low):
            parts = re.split(r"([\-'])", low)
            return _same_length(word, "".join(p[:1].upper() + p[1:] for p in parts))
        return _same_length(word, low)

    def view(self, text: str) -> str:
        """The text with every case-less line truecased (same length); mixed-case lines as written."""
        spans = list(caseless_lines(text))
        if not spans:
            return text
        out = list(text)
        for start, end in spans:
            line = text[start:end]
            for m in _WORD.finditer(line):
                new = self.word(m.group(0))
                out[start + m.start() : start + m.end()] = new
            for m in _STATE_ZIP.finditer(line):
                if m.group(0).lower() in STATES:
                    out[start + m.start() : start + m.end()] = m.group(0).upper()
            for m in STREET.finditer(line):  # "467 meridian street": the address words read as a name
                out[start + m.start(1) : start + m.end(1)] = _capitalised(m.group(1))
            self._places(line, start, out)
        return "".join(out)

    def _places(self, line: str, start: int, out: list[str]) -> None:
        """Gazetteer places (longest first, up to its longest name) are capitalised: "transferred from fishers"."""
        if self.place_words_any.isdisjoint(WORD.findall(line.lower())):
            return  # most lines name no place: one set test
        words = list(WORD.finditer(line))
        i = 0
        while i < len(words):
            first = words[i].group(0).lower()
            longest = min(self.place_words, len(words) - i) if first in self.place_starts else 1
            for n in range(longest, 0, -1):
                a, b = words[i].start(), words[i + n - 1].end()
                phrase = line[a:b]
                if (" ".join(phrase.lower().split()) in self.places and " " in phrase) or (
                    n == 1 and phrase.lower() in self.places
                ):
                    out[start + a : start + b] = _capitalised(phrase)
                    i += n
                    break
            else:
                i += 1


def _census(file: str) -> list[tuple[str, float]]:
    import names

    path = Path(names.__file__).parent / file
    rows = (line.split() for line in path.read_text().splitlines() if line.strip())
    return [(r[0].lower(), float(r[1])) for r in rows]


@functools.cache
def census_names(kind: str = "all") -> frozenset[str]:
    """US census names, lower case, that do not read as ordinary English words: `kind` "first", "last" or "all"."""
    if kind == "all":
        return census_names("first") | census_names("last")
    files, (rare, top, common) = (
        (("dist.male.first", "dist.female.first"), FIRST_NAME) if kind == "first" else (("dist.all.last",), SURNAME)
    )

    def build() -> frozenset[str]:
        from wordfreq import zipf_frequency

        keep: set[str] = set()
        for file in files:
            for rank, (name, _) in enumerate(_census(file)):
                zipf = zipf_frequency(name, "en")
                if zipf < rare or (rank < top and zipf < common):
                    keep.add(name)
        return frozenset(keep)

    rule = f"{rare}-{top}-{common}"
    return cached_words(f"census-{kind}-{rule}-{package_version('names')}-{package_version('wordfreq')}", build)


COMMON_SURNAME_RANK = 2000  # the census's most frequent surnames: "Hill" (32), "Stone" (157), "Park" (460)
COMMON_FIRST_NAME_RANK = 1000  # and first names, per sex: "Faith", "Dawn", "Grace"


@functools.cache
def common_surnames() -> frozenset[str]:
    """The `COMMON_SURNAME_RANK` most frequent US census surnames, ordinary words among them ("hill", "young",
    "stone", "white"), lower case. Only where a name has begun ("dr ngozi hill", "attending mei king") is such a word
    read as a surname: the view keeps them ordinary."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(n for n, _ in _census("dist.all.last")[:COMMON_SURNAME_RANK]) - STOP_WORDS


@functools.cache
def common_first_names() -> frozenset[str]:
    """The `COMMON_FIRST_NAME_RANK` most frequent US census first names of each sex, ordinary words among them
    ("faith", "dawn", "grace"), lower case: read as a name only where a cue says one is said on its own."""
    from spacy.lang.en.stop_words import STOP_WORDS

    files = ("dist.male.first", "dist.female.first")
    return frozenset(n for f in files for n, _ in _census(f)[:COMMON_FIRST_NAME_RANK]) - STOP_WORDS


@functools.cache
def any_census_name() -> frozenset[str]:
    """Every census name the rules know, ordinary words among them: `census_names`, `common_surnames`,
    `common_first_names` ("anderson", "faith", "hill")."""
    return census_names() | common_surnames() | common_first_names()


@functools.cache
def rare_census_names() -> frozenset[str]:
    """Census names that are rare as English words (zipf below ORDINARY_ZIPF): the residual scan's name lexicon."""

    def build() -> frozenset[str]:
        from wordfreq import zipf_frequency

        return frozenset(n for n in census_names() if zipf_frequency(n, "en") < ORDINARY_ZIPF)

    return cached_words(f"rare-census-names-{ORDINARY_ZIPF}-{package_version('wordfreq')}", build)


@functools.cache
def english_words(zipf: float = ORDINARY_ZIPF) -> frozenset[str]:
    """English words at least `zipf` frequent (wordfreq), lower case; of two letters, only TWO_LETTER_WORDS."""

    def build() -> frozenset[str]:
        from wordfreq import top_n_list, zipf_frequency

        words = top_n_list("en", 60_000)
        frequent = (w for w in words if w.isalpha() and len(w) > 2 and zipf_frequency(w, "en") >= zipf)
        return frozenset(frequent) | TWO_LETTER_WORDS

    return cached_words(f"english-words-{zipf}-3-{package_version('wordfreq')}", build)


def _rare_places(places: frozenset[str]) -> frozenset[str]:
    """`places` lower case, those of one word only if rarer than PLACE_ZIPF as a word: a place of several words is
    a name ("fort wayne"), "normal" is not (cached per place list and wordfreq version: no wordfreq import)."""
    import hashlib

    def build() -> frozenset[str]:
        from wordfreq import zipf_frequency

        lowered = {" ".join(p.lower().split()) for p in places}
        return frozenset(p for p in lowered if " " in p or zipf_frequency(p, "en") < PLACE_ZIPF)

    digest = hashlib.sha256("\n".join(sorted(places)).encode()).hexdigest()[:16]
    return cached_words(f"rare-places-{PLACE_ZIPF}-{digest}-{package_version('wordfreq')}", build)


def make_truecaser(
    lexicon: frozenset[str], allow: frozenset[str] = frozenset(), places: frozenset[str] = frozenset()
) -> Truecaser:
    """`lexicon`: lower-case words known to be ordinary here (mixed-case corpus words, ICD-10-CM words): never
    names in the view. `allow`: the clinical allow-list, ordinary unless it is a name too (eponyms: "smith").
    `places`: gazetteer names; those rarer than PLACE_ZIPF as words, and not in the lexicon, are capitalised."""
    # "mary" stays a name, "bone" a word; clinical shorthand is never a name ("aline": an arterial line)
    names = (census_names("first") | (census_names("last") - lexicon)) - SHORTHAND
    rare_places = frozenset(p for p in _rare_places(places) if p not in lexicon and p not in allow)
    ordinary = ((english_words() | allow | TRANSCRIPT) - names) | lexicon
    return Truecaser(ordinary, names, rare_places, english_words(COMMON_ZIPF))
