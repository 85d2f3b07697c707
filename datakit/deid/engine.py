"""The presidio engine: datakit's radiology recognizers first, then spaCy NER on what they left, batched.

Every pass reads the truecased view of a text (`datakit.deid.truecase`: lines written in one case are truecased
with the same offsets), so detection does not depend on how the export capitalised it; a mixed-case note's
all-caps header lines are also read by the patterns as written.

Analysis runs in two passes over a batch of texts:

1. the recognizers of presidio's registry (radiology patterns, the town gazetteer, the case-insensitive cue
   rules), called directly by `Analyzer._patterns` (no NLP pipeline needed: context words are read from the text
   before a match by `WindowContextEnhancer`, presidio's lemma rule without the token search and the deep copy of
   every result);
2. spaCy NER (the `ner` component only) on the lines that can still hold a name: a line goes to the model when
   it has a capitalised word that no pattern already covers, that is not all capitals (an all-capital NER hit is
   dropped anyway), not an earlier de-identification placeholder, not on the clinical allow-list and not a word
   the corpus writes in lower case (each part of a hyphenated word is checked). Report prose, headings, exam
   titles, dates, facility and address lines the patterns found never reach the model. The entities become
   results of presidio's `SpacyRecognizer` directly (`GatedSpacyNlpEngine.entities`; the `NlpEngine` methods
   `process_text`/`process_batch` serve presidio's own `AnalyzerEngine.analyze`, which datakit no longer calls).
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import spacy
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from presidio_analyzer.predefined_recognizers import SpacyRecognizer
from spacy.lang.en.stop_words import STOP_WORDS

from datakit.content import PLACEHOLDER_PATTERN
from datakit.deid.cues import (
    CUE_WORDS,
    CUED_NAME,
    FREQUENT_ZIPF,
    GENERIC,
    RELATION_WORDS,
    SERVICES,
    CaseInsensitiveCueRecognizer,
)
from datakit.deid.cues import NAME as CUE_RECOGNIZER
from datakit.deid.gazetteer import NAME as GAZETTEER
from datakit.deid.gazetteer import CityGazetteerRecognizer
from datakit.deid.nercache import NerCache
from datakit.deid.normalize import View
from datakit.deid.normalize import view as normal_view
from datakit.deid.phones import DEFAULT_REGIONS, PhoneNumberRecognizer
from datakit.deid.recognizers import (
    CLINICAL_ALLOW,
    MONTH_WORD,
    SETTING_AFTER_CONTEXT,
    SETTING_CONTEXT,
    local_result,
    radiology_recognizers,
)
from datakit.deid.tagger import PhiTaggerRecognizer
from datakit.deid.truecase import (
    CLINICAL_SHAPE,
    WORD,
    Truecaser,
    any_census_name,
    caseless_lines,
    census_names,
    english_words,
    in_vocabulary,
    make_truecaser,
)
from datakit.deid.wards import MOVE_WORDS, UNITS, WARD_SHAPE, WardRecognizer
from datakit.deid.wordcache import cached_words, package_version

NER_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORGANIZATION"}
NER_SCORE = 0.85
CUE_NAME_RECOGNIZERS = frozenset({"RadiologyNameRecognizer", CUE_RECOGNIZER})
NOT_NER = ["tok2vec", "tagger", "morphologizer", "parser", "attribute_ruler", "lemmatizer", "senter", "transformer"]
_CONTEXT_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")
_PLACEHOLDER = re.compile(rf"(?i:{PLACEHOLDER_PATTERN})")
# text an earlier de-identification already replaced ("XXXX", "[NAME]", "[**Last Name**]"): nothing left to remove
_TITLE_BEFORE = re.compile(r"(?i)\b(?:dr|drs|doctor|mr|mrs|ms|miss|prof)\b'?\.?[ \t]*$")
_PLACE_BEFORE = re.compile(r"(?i)\b(?:at|from|to|in|into|@|via|of)[ \t]+(?:the[ \t]+)?$")
_SENTENCE_START = re.compile(r"(?:^|[.:;!?\n\"]\s*|\n\s*)$")
# what else sends a line to the tagger: an upper-case token of 2-5 letters (checked against the vocabularies), a
# month/day, an apostrophe year, a number of five digits or more
_TAGGER_TOKEN = re.compile(r"\b[A-Z]{2,5}\b|\b[a-z][a-z'\-]{2,}\b|\b\d{1,2}[/\-]\d{1,2}\b|'\d{2}\b|\b\d{5,}\b")
# a word that makes an organisation a place of care (an organisation NER finds must have one to be PHI alone)
FACILITY_WORD = re.compile(
    r"(?i)\b(?:hospital|hosp|clinic|medical|health|healthcare|center|centre|infirmary|institute|university|"
    r"memorial|rehab|rehabilitation|nursing|hospice|sanatorium|va|vamc)\b"
)
# words at a name's edge that are who, not a name: titles, credentials, roles and relation words ("DR TOMASEK",
# "B. CLIFFORD MD", "s. roberto rrt", "dtr laverne"); the rule's span keeps the name only
# "DR KEARNS PAGED", "DR SPARKES AWARE": what a note says of the person after the name
EDGE_WORDS = CUE_WORDS | RELATION_WORDS | frozenset("rrt lpn crnp cnm by paged notified aware updated informed".split())
_ONLY_PLACEHOLDERS = re.compile(rf"(?:[\s,.;:]|{PLACEHOLDER_PATTERN})+")


CASELESS_MIN_RECORDS = 5  # a word of case-less lines is vocabulary when this many records
CASELESS_MIN_SHARE = 0.001  # (and this share of them) use it, and it is no census name, place or cued name


def cued_names(texts: pl.Series) -> frozenset[str]:
    """Lower-case words the corpus writes where a name goes, in any case: after a title, role, relation word or
    greeting, before a credential or a facility word, a short abbreviation after at/to/from ("dr lindqvist",
    "husband arjun", "hi, declan", "okafor, md", "methodist hospital", "transfer from cnh")."""
    found = texts.fill_null("").str.extract_all(CUED_NAME.pattern).explode().drop_nulls()
    words = found.str.to_lowercase().str.extract_all(r"[a-z][a-z'\-]+").explode().drop_nulls()
    return frozenset(words.unique().to_list()) - CUE_WORDS - STOP_WORDS


def ward_names(texts: pl.Series) -> frozenset[str]:
    """Lower-case words the corpus writes where a ward, building or campus name goes ("transfer to quartermain 2",
    "mazur campus"): a local name recurs in every note, in lower case too, and must not become vocabulary."""
    wards = texts.fill_null("").str.extract_all(WARD_SHAPE).explode().drop_nulls()
    words = wards.str.to_lowercase().str.extract_all(r"[a-z][a-z'\-]+").explode().drop_nulls()
    return (
        frozenset(words.unique().to_list()) - MOVE_WORDS - UNITS - GENERIC - STOP_WORDS - english_words(FREQUENT_ZIPF)
    )


def corpus_lexicon(texts: pl.Series, min_records: int = 3, places: frozenset[str] = frozenset()) -> frozenset[str]:
    """The corpus's own vocabulary: words it writes in lower case in lines that mix cases, in at least
    `min_records` records, and words of its case-less lines (ALL CAPS, all lower case) used in at least
    `CASELESS_MIN_RECORDS` records and `CASELESS_MIN_SHARE` of them that are not census names, not words of
    `places` and not words the corpus itself uses as names (`cued_names`: a radiologist's name recurs in thousands
    of reports; there a lower-case word says nothing, names are lower case too). A capitalised
    word outside it (and outside the allow-list) is what sends a line to NER. Only whole whitespace-separated words
    count (surrounding punctuation stripped): the parts of an e-mail address or URL ("linda.kowalczyk@…") are not
    vocabulary, or every name that appears in an address would be let through."""
    lines = (
        pl.DataFrame({"t": texts.fill_null("")})
        .with_row_index("r")
        .select("r", pl.col("t").str.split("\n").alias("line"))
        .explode("line")
        .with_columns(
            (pl.col("line").str.contains("[A-Z]") & pl.col("line").str.contains("[a-z]")).alias("mixed"),
            pl.col("line").str.to_lowercase().alias("lower"),
        )
    )

    def counted(frame: pl.DataFrame, column: str) -> pl.DataFrame:
        return (
            frame.select("r", pl.col(column).str.split(" ").alias("w"))
            .explode("w")
            .with_columns(pl.col("w").str.strip_chars("\"'()[]{},.;:!?"))
            .filter(pl.col("w").str.contains(r"^[a-z][a-z'\-]+$"))
            .unique()
            .group_by("w")
            .len()
        )

    mixed = counted(lines.filter(pl.col("mixed")), "line").filter(pl.col("len") >= min_records)
    floor = max(CASELESS_MIN_RECORDS, int(CASELESS_MIN_SHARE * len(texts)))
    caseless = counted(lines.filter(~pl.col("mixed")), "lower").filter(pl.col("len") >= floor)
    place_words = frozenset(w for p in places for w in p.lower().split())
    frequent = frozenset(caseless["w"].to_list()) - census_names() - place_words - cued_names(texts)
    return (frozenset(mixed["w"].to_list()) | frequent | code_set_vocabulary()) - ward_names(texts)


@functools.cache
def code_set_vocabulary() -> frozenset[str]:
    """Every word of the ICD-10-CM code descriptions (the codes stage's table, from simple-icd-10-cm): a clinical
    vocabulary of ~7K words that ships in a package (cached per package version). Eponyms in it (Hodgkin, Crohn)
    are also on the allow-list."""

    def build() -> frozenset[str]:
        from datakit.codes.icd10 import code_table

        words = code_table()["description"].str.extract_all(WORD.pattern).explode().drop_nulls()
        return frozenset(words.str.to_lowercase().unique().to_list())

    return cached_words(f"icd10cm-words-{package_version('simple-icd-10-cm')}", build)


def is_clinical(word: str, lexicon: frozenset[str]) -> bool:
    w = word.lower().strip("'-")
    return w in CLINICAL_ALLOW or in_vocabulary(w, lexicon)


def is_trigger(word: str, lexicon: frozenset[str]) -> bool:
    """A word that can start a name NER should look for: capitalised, not all capitals, not a placeholder, not a
    stop word or its contraction ("I'm", "We'll": dialogue), and not clinical (a hyphenated word is clinical when
    every part is: "Real-time", "XXXX-year-old")."""
    if not word[0].isupper() or word.isupper() or _PLACEHOLDER.fullmatch(word) or is_clinical(word, lexicon):
        return False
    if word.lower().split("'")[0] in STOP_WORDS:
        return False
    parts = [p for p in word.split("-") if p]
    return not all(p.islower() or p.isupper() or is_clinical(p, lexicon) for p in parts)


TAGGER_WINDOW = 80  # characters of context each side of a tagger trigger (~10 words: more than the model reads)


def _windows(line: str, triggers: list[tuple[int, int]], width: int = TAGGER_WINDOW) -> list[tuple[int, int]]:
    """Stretches of `line` around `triggers`, `width` characters each side, widened to whole words, overlaps
    joined; a line of up to three widths whole."""
    if not triggers:
        return []
    if len(line) <= 3 * width:  # a short line is read whole
        return [(0, len(line))]
    out: list[tuple[int, int]] = []
    for a, b in _union((max(0, a - width), min(len(line), b + width)) for a, b in triggers):
        a = line.rfind(" ", 0, a) + 1 if a > 0 else 0
        space = line.find(" ", b)
        b = len(line) if space < 0 else space
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _union(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """`spans` as sorted, disjoint intervals (overlapping ones joined)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _covered(spans: Sequence[tuple[int, int]], at: int) -> bool:
    """Whether position `at` lies in one of `spans` (sorted, disjoint: see `_union`)."""
    i = bisect.bisect_right(spans, (at, float("inf"))) - 1
    return i >= 0 and at < spans[i][1]


class GatedSpacyNlpEngine(NlpEngine):
    """presidio NlpEngine: NER entities from the gated lines only, tokens for the texts that have entities."""

    def __init__(self, model: str, lexicon: frozenset[str], gate: bool = True, batch_size: int = 256) -> None:
        self.model = model
        self.lexicon = lexicon
        self.gate = gate
        self.batch_size = batch_size
        self.nlp = spacy.load(model, exclude=NOT_NER)
        self.ner = NerCache(self.nlp, batch_size)  # template lines repeat: each distinct line read once
        self.tokenizer = self.nlp.tokenizer
        # artifacts with no entity and no token: enough for presidio's pattern recognizers and SpacyRecognizer
        self.no_entities = NlpArtifacts([], [], [], [], self, "en", scores=[])  # type: ignore[arg-type]
        self.lines_seen = 0
        self.lines_to_ner = 0

    def load(self) -> None:
        return None

    def is_loaded(self) -> bool:
        return True

    def get_supported_entities(self) -> list[str]:
        return sorted(set(NER_LABELS.values()))

    def get_supported_languages(self) -> list[str]:
        return ["en"]

    def is_stopword(self, word: str, language: str) -> bool:
        return word.lower() in STOP_WORDS

    def is_punct(self, word: str, language: str) -> bool:
        return bool(self.nlp.vocab[word].is_punct)

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        return next(iter(self.process_batch([text], language)))[1]

    def triggers(
        self, line: str, offset: int = 0, covered: Sequence[tuple[int, int]] = ()
    ) -> Iterator[tuple[int, int]]:
        """(start, end) in `line` (at `offset` in its text) of each trigger word outside the `covered` spans."""
        for m in WORD.finditer(line):
            if is_trigger(m.group(0), self.lexicon) and not _covered(covered, offset + m.start()):
                yield m.start(), m.end()

    def needs_ner(self, line: str, offset: int = 0, covered: Sequence[tuple[int, int]] = ()) -> bool:
        """Whether `line` (at `offset` in its text) has a trigger word outside the `covered` spans."""
        return next(self.triggers(line, offset, covered), None) is not None

    def process_batch(
        self,
        texts: Iterable[str],
        language: str,
        batch_size: int | None = None,
        n_process: int = 1,
        covered: Sequence[Sequence[tuple[int, int]]] | None = None,
        **_: Any,
    ) -> Iterator[tuple[str, NlpArtifacts]]:
        """Artifacts per text; `covered[i]` are text i's spans the patterns already found (see `_union`)."""
        texts = list(texts)
        for text, ents in zip(texts, self.entities(texts, covered, batch_size), strict=True):
            yield text, self._artifacts(text, ents)

    def entities(
        self,
        texts: list[str],
        covered: Sequence[Sequence[tuple[int, int]]] | None = None,
        batch_size: int | None = None,
    ) -> list[list[tuple[int, int, str]]]:
        """(start, end, presidio entity) of NER's entities per text, from the gated lines only."""
        segments: list[tuple[int, int, str]] = []  # (text index, offset, line)
        for i, text in enumerate(texts):
            offset = 0
            for line in text.split("\n"):
                self.lines_seen += 1
                if line.strip() and (not self.gate or self.needs_ner(line, offset, covered[i] if covered else ())):
                    segments.append((i, offset, line))
                offset += len(line) + 1
        self.lines_to_ner += len(segments)
        found: list[list[tuple[int, int, str]]] = [[] for _ in texts]
        read = self.ner.entities((s[2] for s in segments), batch_size or self.batch_size)
        for (i, offset, _line), ents in zip(segments, read, strict=True):
            for start, end, spacy_label in ents:
                label = NER_LABELS.get(spacy_label)
                if label:
                    found[i].append((offset + start, offset + end, label))
        return found

    def _artifacts(self, text: str, ents: list[tuple[int, int, str]]) -> NlpArtifacts:
        if not ents:  # nothing for SpacyRecognizer to report: skip tokenising the text
            return self.no_entities
        doc = self.tokenizer(text)
        spans = [s for s in (doc.char_span(a, b, label=lab, alignment_mode="expand") for a, b, lab in ents) if s]
        return NlpArtifacts(
            entities=spans,
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lower_ for t in doc],
            nlp_engine=self,
            language="en",
            scores=[NER_SCORE] * len(spans),
        )


class WindowContextEnhancer(ContextAwareEnhancer):
    """presidio's lemma context rule read from the text: the `context_prefix_count` words before a match that are
    not stop words; when one of them is a context word of the match's recognizer (presidio's `whole_word` mode:
    its default `substring` mode finds "on" in "coronal"), the score rises by `context_similarity_factor` (to at
    least `min_score_with_context_similarity`). Results are updated in place (they are this call's own), and only
    those of recognizers that have context words are looked at."""

    def __init__(self, factor: float = 0.35, min_score: float = 0.4, prefix: int = 5, window: int = 160) -> None:
        super().__init__(
            context_similarity_factor=factor,
            min_score_with_context_similarity=min_score,
            context_prefix_count=prefix,
            context_suffix_count=0,
        )
        self.window = window

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        with_context = {r.id: [c.lower() for c in r.context] for r in recognizers if r.context}
        extra = [c.lower() for c in context or []]
        for result in raw_results:
            meta = result.recognition_metadata or {}
            words = with_context.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
            if not words or meta.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                continue
            before = _CONTEXT_WORD.findall(text[max(0, result.start - self.window) : result.start].lower())
            nearby = [w for w in before if w not in STOP_WORDS][-self.context_prefix_count :] + extra
            word = next((c for c in words if c in nearby), None)
            if word is not None:
                result.score = min(
                    max(result.score + self.context_similarity_factor, self.min_score_with_context_similarity),
                    ContextAwareEnhancer.MAX_SCORE,
                )
                result.analysis_explanation.set_supportive_context_word(word)
                result.analysis_explanation.set_improved_score(result.score)
        return raw_results


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity: str
    score: float
    recognizer: str


def build_analyzer(
    nlp_engine: NlpEngine,
    places: frozenset[str] = frozenset(),
    lexicon: frozenset[str] = frozenset(),
    truecaser: Truecaser | None = None,
    phone_regions: tuple[str, ...] = DEFAULT_REGIONS,
) -> AnalyzerEngine:
    """presidio's engine with datakit's pattern recognizers, libphonenumber's phone numbers, the place gazetteer
    and the case-insensitive cue rules (NER and tagger results come from `Analyzer`'s later passes)."""
    registry = RecognizerRegistry(supported_languages=["en"])
    for r in radiology_recognizers():
        registry.add_recognizer(r)
    if phone_regions:
        registry.add_recognizer(PhoneNumberRecognizer(phone_regions))
    if places:
        names = any_census_name()
        registry.add_recognizer(
            CityGazetteerRecognizer(places, lambda w: is_clinical(w, lexicon), lambda w: w.lower() in names)
        )
    if truecaser is not None:
        registry.add_recognizer(CaseInsensitiveCueRecognizer(truecaser, clinical_words(lexicon)))
        words = english_words(FREQUENT_ZIPF) | clinical_words(lexicon)
        registry.add_recognizer(WardRecognizer(lambda w: in_vocabulary(w, words)))
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=["en"],
        context_aware_enhancer=WindowContextEnhancer(),
    )


def _name(result: RecognizerResult) -> str:
    return str((result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, ""))


def is_notation(span: str) -> bool:
    """All-capital acronyms and headings, abbreviations and notation with digits ("STIR", "M.D.", "G2P1"): what
    NER may label but is never a name."""
    return any(c.isdigit() for c in span) or span.isupper() or bool(re.search(r"[A-Za-z]\.[A-Za-z]", span))


def _trim(
    result: RecognizerResult,
    text: str,
    lexicon: frozenset[str],
    known: Callable[[str], bool] | None = None,
    common: frozenset[str] = frozenset(),
) -> RecognizerResult | None:
    """An NER hit, or None when it is not a name: hits made only of clinical words (eponyms, drugs, headings,
    words the corpus writes in lower case), all-capital acronyms and headings ("STIR", "MLO", "NM BONE SCAN"),
    abbreviations ("M.D.") and notation with digits ("G2P1"). A hit with a non-clinical word keeps every
    capitalised word around it ("James Okafor", "John Smith": first names and surnames that are also eponyms go
    with the name) and loses lower-case edge words. In a case-less line (`known` given) capitals were written by
    the truecaser, so a one-word hit must be a word `known` knows as a name or place. A pattern recognizer's hit is
    kept as it is."""
    if _name(result) != "SpacyRecognizer":
        return result
    span = text[result.start : result.end]
    if is_notation(span):
        return None
    words = list(WORD.finditer(span))
    # a word that names no one: clinical, or one of the most common English words that is no census name
    # ("Medical Reasoning", "Specialist Referrals": headings NER reads as an organisation)
    names = [m for m in words if not is_clinical(m.group(0), lexicon) and m.group(0).lower() not in common]
    if not names:
        return None
    if known is not None and len(words) == 1 and not known(words[0].group(0)):
        return None  # case-less line: one word NER read as a name, that no name list or gazetteer knows ("Apex")
    kept = names + [m for m in words if m.group(0)[0].isupper()]
    result.start, result.end = result.start + min(m.start() for m in kept), result.start + max(m.end() for m in kept)
    return result


def merge_spans(
    results: list[RecognizerResult],
    text: str,
    lexicon: frozenset[str],
    threshold: float,
    caseless: Sequence[tuple[int, int]] = (),
    known: Callable[[str], bool] | None = None,
    common: frozenset[str] = frozenset(),
) -> list[Span]:
    """Kept results above `threshold` (a span made only of earlier de-identification placeholders is not PHI),
    overlaps merged into their union (recall first); the merged span takes the
    entity of its highest-scoring part (patterns win ties over NER)."""
    trimmed = (
        _trim(r, text, lexicon, known if _covered(caseless, r.start) else None, common)
        for r in results
        if r.score >= threshold
    )
    kept = sorted(
        (r for r in trimmed if r is not None and not _ONLY_PLACEHOLDERS.fullmatch(text[r.start : r.end].lower())),
        key=lambda r: (r.start, -r.end),
    )
    merged: list[Span] = []
    for r in kept:
        name = _name(r)
        rank = r.score + (0.01 if name != "SpacyRecognizer" else 0.0)
        if merged and r.start < merged[-1].end:
            last = merged[-1]
            best = (r.entity_type, rank, name) if rank > last.score else (last.entity, last.score, last.recognizer)
            merged[-1] = Span(last.start, max(last.end, r.end), best[0], best[1], best[2])
        else:
            merged.append(Span(r.start, r.end, r.entity_type, rank, name))
    return merged


def clinical_words(lexicon: frozenset[str]) -> frozenset[str]:
    """Lower-case clinical vocabulary: the allow-list and the lexicon (corpus words, ICD-10-CM words)."""
    return lexicon | CLINICAL_ALLOW


def _only(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with everything outside `spans` blank but its line breaks (same offsets)."""
    out = [c if c == "\n" else " " for c in text]
    for a, b in spans:
        out[a:b] = text[a:b]
    return "".join(out)


def _has_mixed_line(text: str, caseless: list[tuple[int, int]]) -> bool:
    return sum(b - a for a, b in caseless) + len(caseless) < len(text.strip()) + 1


class Analyzer:
    """Analyse texts in batches: the pattern pass, then gated NER on what it left, merged into spans. Every pass
    reads the truecased view of the text (`truecase`: lines of one case truecased, same offsets), so detection
    does not depend on how the export capitalised it; spans apply to the original text."""

    def __init__(
        self,
        model: str,
        lexicon: frozenset[str],
        gate: bool,
        threshold: float,
        batch_size: int,
        places: frozenset[str] = frozenset(),
        tagger: str = "",
        phone_regions: tuple[str, ...] = DEFAULT_REGIONS,
    ) -> None:
        self.truecaser = make_truecaser(lexicon, CLINICAL_ALLOW, places)
        self.tagger = PhiTaggerRecognizer(tagger, batch_size) if tagger else None
        # the gate also lets pass the most common English words that are no names ("Thanks", "Oh", "Guest")
        gate_words = lexicon | (self.truecaser.common - self.truecaser.names)
        self.nlp_engine = GatedSpacyNlpEngine(model, gate_words, gate, batch_size)
        self.engine = build_analyzer(self.nlp_engine, places, lexicon, self.truecaser, phone_regions)
        self.ner = SpacyRecognizer(supported_entities=self.nlp_engine.get_supported_entities())
        self.lexicon = lexicon
        self.threshold = threshold
        self.census = any_census_name()
        self.recognizers = self.engine.registry.get_recognizers(language="en", all_fields=True)
        self.entities = self.engine.get_supported_entities(language="en")
        self.common = self.truecaser.common - self.census  # the most common English words that are no names
        # words a cue pattern must not take for a name on their own ("LOPRESSOR HELD TODAY, MD AWARE", "per
        # RHEUMATOLOGY"): frequent English words and clinical words that no census list holds
        self.not_names = (english_words(FREQUENT_ZIPF) | clinical_words(lexicon) | SERVICES) - self.census

    def _patterns(self, text: str) -> list[RecognizerResult]:
        """The registry's recognizers on `text` with the context rule: what presidio's `AnalyzerEngine.analyze`
        does here, without its per-recognizer context loop (every recognizer here keeps the base class's no-op),
        its zero score floor and its duplicate removal (overlaps are merged into their union afterwards)."""
        results: list[RecognizerResult] = []
        for recognizer in self.recognizers:
            found = recognizer.analyze(text=text, entities=self.entities, nlp_artifacts=self.nlp_engine.no_entities)
            for result in found or ():
                meta = result.recognition_metadata = result.recognition_metadata or {}
                meta.setdefault(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, recognizer.id)
                meta.setdefault(RecognizerResult.RECOGNIZER_NAME_KEY, getattr(recognizer, "name", ""))
                results.append(result)
        enhancer = self.engine.context_aware_enhancer
        return enhancer.enhance_using_context(text, results, self.nlp_engine.no_entities, self.recognizers)

    def _tagged(
        self, originals: list[str], views: list[str], covered: list[list[tuple[int, int]]]
    ) -> list[list[RecognizerResult]]:
        """The learned tagger's results per text, from the stretches that can still hold PHI the patterns missed
        (its gate, `tagger_triggers`: a window of `TAGGER_WINDOW` characters each side of a trigger, cut at spaces,
        within the line); it reads them as written (it was trained so), in one batch. The model sees four tokens
        each side of a word, so a window holds all the context it reads."""
        segments: list[tuple[int, int, str]] = []  # (text index, offset, stretch as written)
        for i, (original, view) in enumerate(zip(originals, views, strict=True)):
            offset = 0
            for line, seen in zip(original.split("\n"), view.split("\n"), strict=True):
                if line.strip():
                    if not self.nlp_engine.gate:
                        segments.append((i, offset, line))
                    else:
                        for a, b in _windows(line, self.tagger_triggers(seen, offset, covered[i])):
                            segments.append((i, offset + a, line[a:b]))
                offset += len(line) + 1
        out: list[list[RecognizerResult]] = [[] for _ in originals]
        assert self.tagger is not None
        for (i, offset, _), results in zip(segments, self.tagger.analyze_many([s[2] for s in segments]), strict=True):
            for r in results:
                r.start, r.end = r.start + offset, r.end + offset
                out[i].append(r)
        return out

    def tagger_triggers(self, line: str, offset: int, covered: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """The tagger's gate, on a line of the view: where it must read, as (start, end) in the line. A
        capitalised word no pattern covered and no vocabulary knows (NER's trigger), an acronym where a site goes
        or a lower-case word no vocabulary knows ("at GH", "quartermain"), a date-, year- or number-like token
        ("9/7", "'79", "12345") no pattern covered."""
        found = list(self.nlp_engine.triggers(line, offset, covered))
        for m in _TAGGER_TOKEN.finditer(line):
            if _covered(covered, offset + m.start()):
                continue
            word = m.group(0)
            if not word[0].isalpha():
                found.append((m.start(), m.end()))
                continue
            if is_clinical(word, self.lexicon) or _PLACEHOLDER.fullmatch(word):
                continue
            if word.isupper():  # an acronym where a site goes ("at GH", "from VAMC"), not "CXR", "COPD"
                if _PLACE_BEFORE.search(line[max(0, m.start() - 12) : m.start()]):
                    found.append((m.start(), m.end()))
            elif not any(self._known_word(p) or CLINICAL_SHAPE.match(p) for p in (word, *word.split("-")) if p):
                found.append((m.start(), m.end()))
        return found

    def _confirmed(
        self,
        result: RecognizerResult,
        text: str,
        tagged: list[RecognizerResult],
        caseless: Sequence[tuple[int, int]] = (),
    ) -> bool:
        """Whether a general-domain NER hit stands beside the tagger: the tagger found PHI there too, or the hit
        holds a word a census name list or the gazetteer knows (an organisation: a facility word too). Trained on
        news, NER reads clinical shorthand, drugs and misspellings as names and organisations ("RXED W", "Bair
        Hugger", "Natricor"); the tagger, trained on clinical notes, is the second opinion. Pattern, gazetteer and
        cue results stand on their own."""
        if _name(result) != "SpacyRecognizer":
            return True
        if any(t.start < result.end and result.start < t.end for t in tagged):
            return True
        span = text[result.start : result.end]
        if any(self.truecaser.is_name_or_place(m.group(0)) for m in WORD.finditer(span)):
            return True  # a census name or a place, whatever NER called it ("(Rothrock)" as an organisation)
        if result.entity_type == "ORGANIZATION":
            return bool(FACILITY_WORD.search(span))
        # a person: a word capitalised as written in mid-sentence that no vocabulary knows ("explained to Radu
        # by Dr"); not at a sentence's start, not in a line of one case (there the truecaser wrote the capitals)
        if result.entity_type != "PERSON" or _covered(caseless, result.start):
            return False
        if _SENTENCE_START.search(text[max(0, result.start - 3) : result.start]) or result.start == 0:
            return False
        return any(w[0].isupper() and not w.isupper() and not self._known_word(w.lower()) for w in WORD.findall(span))

    def _known_word(self, low: str) -> bool:
        return self.truecaser.is_ordinary(low) or is_clinical(low, self.lexicon) or low in self.truecaser.common

    def _named_place(self, place: str) -> bool:
        return any(w in self.census for w in place.lower().split())

    def analyze(self, texts: list[str]) -> list[list[Span]]:
        """Spans per text, in the text's own offsets; every detector reads its normalised view (`normalize`:
        invisible characters out, fullwidth and look-alike forms folded) and each span covers the original
        characters it came from, invisible ones inside it included."""
        views = [normal_view(t) for t in texts]
        found = self._analyze([v.text for v in views])
        return [[_on_original(s, v) for s in spans] for spans, v in zip(found, views, strict=True)]

    def _analyze(self, texts: list[str]) -> list[list[Span]]:
        caseless = [list(caseless_lines(t)) for t in texts]
        originals, texts = texts, [self.truecaser.view(t) for t in texts]
        found = [self._patterns(t) for t in texts]
        for results, original, view, lines in zip(found, originals, texts, caseless, strict=True):
            # a mixed-case note's all-caps header lines are also read as written ("PATIENT: MILLER, LINDA" is a
            # name there); a note written wholly in one case is read through its view only
            if view != original and _has_mixed_line(original, lines):
                header = _only(original, lines)  # the case-less lines as written, the rest blank (same offsets)
                results += self._patterns(header)
        # a gazetteer hit keeps a line from NER only when it is no name: "Thomas" is a town and a name, and NER
        # labels names; "Brownsburg" is only a town
        covered = [
            _union(
                (r.start, r.end)
                for r in rs
                if r.score >= self.threshold and (_name(r) != GAZETTEER or not self._named_place(t[r.start : r.end]))
            )
            for rs, t in zip(found, texts, strict=True)
        ]
        # NER's entities become results directly (what presidio's SpacyRecognizer does with them, without
        # tokenising the whole text again to build its NlpArtifacts)
        for ents, results in zip(self.nlp_engine.entities(texts, covered), found, strict=True):
            results += [local_result(self.ner, label, a, b, NER_SCORE, "spaCy NER") for a, b, label in ents]
        if self.tagger is not None:
            for tagged, results, text, lines in zip(
                self._tagged(originals, texts, covered), found, texts, caseless, strict=True
            ):
                tagged = [t for t in tagged if self._plausible_tag(t, text)]
                results[:] = [r for r in results if self._confirmed(r, text, tagged, lines)] + tagged
        return [
            merge_spans(
                [self._name_only(r, t) for r in rs if not self._wordy_name(r, t)],
                t,
                self.lexicon,
                self.threshold,
                cl,
                self.truecaser.is_name_or_place,
                self.common,
            )
            for rs, t, cl in zip(found, texts, caseless, strict=True)
        ]

    def _plausible_tag(self, result: RecognizerResult, text: str) -> bool:
        """The tagger's hit, unless the rules know better: a name made only of frequent English or clinical words
        ("bottles", "AUREUS"), a month/day that is a score or a setting ("pain 5/10", "CPAP 5/5")."""
        if result.entity_type == "PERSON":
            return not self._wordy_name(result, text, any_recognizer=True)
        if result.entity_type == "DATE_TIME":
            span = text[result.start : result.end]
            if re.search(r"[A-Za-z]", span) and not MONTH_WORD.search(span):
                return False  # words that are no month ("floor 5")
            before, after = text[max(0, result.start - 24) : result.start], text[result.end : result.end + 16]
            return not (SETTING_CONTEXT.search(before) or SETTING_AFTER_CONTEXT.match(after))
        return True

    def _name_only(self, result: RecognizerResult, text: str) -> RecognizerResult:
        """A person's span without the words at its edges that name no one: titles, credentials, roles, relation
        words, and frequent English or clinical words no census list holds ("DR. SPARKES AWARE", "PER N. RUTH NP",
        "DR PRICE CAME BY"). A span of such words only is left as it is (the rules before decided it is a name:
        "Dr. Banks" after a title); single letters stay (initials)."""
        if result.entity_type != "PERSON":
            return result
        words = list(WORD.finditer(text, result.start, result.end))
        named = [i for i, m in enumerate(words) if not self._edge_word(m.group(0))]
        if not any(len(words[i].group(0)) > 1 for i in named) or (named[0] == 0 and named[-1] == len(words) - 1):
            return result  # nothing but initials would be left, or nothing to trim
        start = words[named[0]].start() if named[0] > 0 else result.start
        end = words[named[-1]].end() if named[-1] < len(words) - 1 else result.end
        return RecognizerResult(
            result.entity_type, start, end, result.score, result.analysis_explanation, result.recognition_metadata
        )

    def _edge_word(self, word: str) -> bool:
        low = word.lower().strip("'-.")
        return len(low) > 1 and (low in EDGE_WORDS or low in self.not_names)

    def _wordy_name(self, result: RecognizerResult, text: str, any_recognizer: bool = False) -> bool:
        """A cue pattern's name made only of frequent English or clinical words, none a census name: a word a
        note writes where a name could go ("CONSIDER REPLACING PA LINE", "LOPRESSOR HELD TODAY, MD AWARE", "per
        ICU team"), not a name ("Dr. Young", "faith little m.d." are census names)."""
        if result.entity_type != "PERSON" or not (any_recognizer or _name(result) in CUE_NAME_RECOGNIZERS):
            return False
        if _TITLE_BEFORE.search(text[max(0, result.start - 12) : result.start]):
            return False  # a title names a person, whatever the word ("Dr. Banks", "Mr. Rivers")
        words = [m.group(0).lower() for m in WORD.finditer(text[result.start : result.end])]
        return bool(words) and all(w in self.not_names for w in words)


def _on_original(span: Span, view: View) -> Span:
    if view.starts is None:
        return span
    start, end = view.original(span.start, span.end)
    return Span(start, end, span.entity, span.score, span.recognizer)


def model_version(model: str) -> str:
    """`<lang>_<name>-<version>` of a spaCy model package or folder, from its meta.json (nothing is loaded)."""
    path = Path(model).expanduser()
    meta = spacy.util.get_model_meta(path if path.is_dir() else spacy.util.get_package_path(model))
    return f"{meta.get('lang', 'en')}_{meta.get('name', model)}-{meta.get('version', '?')}"
