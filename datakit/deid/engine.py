"""The presidio engine: datakit's radiology recognizers + spaCy NER, batched, on every core.

spaCy runs NER only (no tagger, parser or lemmatizer: presidio needs entities and tokens, and context words are
matched on lower-cased tokens instead of lemmas). NER is the slow part, so it runs only on the lines that can
hold a name: a line is sent to the model when it has a capitalised word that the corpus never writes in lower
case and that is not on the clinical allow-list (report prose, headings and exam titles are skipped). Lines
with cue words are still covered by the pattern recognizers whatever the gate decides.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
import spacy
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from datakit.deid.recognizers import CLINICAL_ALLOW, radiology_recognizers
from datakit.leakage.normalize import PLACEHOLDER_PATTERN

NER_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORGANIZATION"}
NER_SCORE = 0.85
NOT_NER = ["tok2vec", "tagger", "morphologizer", "parser", "attribute_ruler", "lemmatizer", "senter", "transformer"]
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
# text an earlier de-identification already replaced ("XXXX", "[NAME]", "[**Last Name**]"): nothing left to remove
_ONLY_PLACEHOLDERS = re.compile(rf"(?:[\s,.;:]|{PLACEHOLDER_PATTERN})+")


def corpus_lexicon(texts: pl.Series, min_records: int = 3) -> frozenset[str]:
    """Words the corpus writes in lower case in at least `min_records` records: ordinary and clinical vocabulary.
    A capitalised word outside it (and outside the allow-list) is what sends a line to NER."""
    words = (
        pl.DataFrame({"t": texts.fill_null("")})
        .with_row_index("r")
        .select("r", pl.col("t").str.extract_all(r"\b[a-z][a-z'\-]+\b").alias("w"))
        .explode("w")
        .drop_nulls("w")
        .unique()
        .group_by("w")
        .len()
        .filter(pl.col("len") >= min_records)
    )
    return frozenset(words["w"].to_list()) | code_set_vocabulary()


@functools.cache
def code_set_vocabulary() -> frozenset[str]:
    """Every word of the ICD-10-CM descriptions (simple-icd-10-cm, when installed): a clinical vocabulary of ~15K
    words that ships in a package. Eponyms in it (Hodgkin, Crohn) are also on the allow-list."""
    try:
        from importlib.resources import files

        tabular = next(p for p in files("simple_icd_10_cm.data").iterdir() if p.name.endswith(".xml"))
    except (ImportError, StopIteration):  # pragma: no cover - the codes extra is installed by make
        return frozenset()
    descriptions = " ".join(re.findall(r"<desc>([^<]*)</desc>", tabular.read_text(encoding="utf-8")))
    return frozenset(w.lower() for w in _WORD.findall(descriptions))


def is_clinical(word: str, lexicon: frozenset[str]) -> bool:
    w = word.lower().strip("'-")
    return w in CLINICAL_ALLOW or w in lexicon or w.removesuffix("'s") in lexicon


class GatedSpacyNlpEngine(NlpEngine):
    """presidio NlpEngine: spaCy tokens for every text, NER entities from the gated lines only."""

    def __init__(self, model: str, lexicon: frozenset[str], gate: bool = True, batch_size: int = 256) -> None:
        self.model = model
        self.lexicon = lexicon
        self.gate = gate
        self.batch_size = batch_size
        self.nlp = spacy.load(model, exclude=NOT_NER)
        self.tokenizer = self.nlp.tokenizer
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
        return bool(self.nlp.vocab[word].is_stop)

    def is_punct(self, word: str, language: str) -> bool:
        return bool(self.nlp.vocab[word].is_punct)

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        return next(iter(self.process_batch([text], language)))[1]

    def needs_ner(self, line: str) -> bool:
        return any(w[0].isupper() and not is_clinical(w, self.lexicon) for w in _WORD.findall(line))

    def process_batch(
        self, texts: Iterable[str], language: str, batch_size: int | None = None, n_process: int = 1, **_: Any
    ) -> Iterator[tuple[str, NlpArtifacts]]:
        texts = list(texts)
        segments: list[tuple[int, int, str]] = []  # (text index, offset, line)
        for i, text in enumerate(texts):
            offset = 0
            for line in text.split("\n"):
                self.lines_seen += 1
                if line.strip() and (not self.gate or self.needs_ner(line)):
                    segments.append((i, offset, line))
                offset += len(line) + 1
        self.lines_to_ner += len(segments)
        found: list[list[tuple[int, int, str]]] = [[] for _ in texts]
        docs = self.nlp.pipe((s[2] for s in segments), batch_size=batch_size or self.batch_size)
        for (i, offset, _line), doc in zip(segments, docs, strict=True):
            for ent in doc.ents:
                label = NER_LABELS.get(ent.label_)
                if label:
                    found[i].append((offset + ent.start_char, offset + ent.end_char, label))
        for text, ents in zip(texts, found, strict=True):
            doc = self.tokenizer(text)
            spans = []
            for start, end, label in ents:
                span = doc.char_span(start, end, label=label, alignment_mode="expand")
                if span is not None:
                    spans.append(span)
            yield (
                text,
                NlpArtifacts(
                    entities=spans,
                    tokens=doc,
                    tokens_indices=[t.idx for t in doc],
                    lemmas=[t.lower_ for t in doc],
                    nlp_engine=self,
                    language="en",
                    scores=[NER_SCORE] * len(spans),
                ),
            )


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity: str
    score: float
    recognizer: str


def build_analyzer(nlp_engine: NlpEngine) -> AnalyzerEngine:
    registry = RecognizerRegistry(supported_languages=["en"])
    for r in radiology_recognizers():
        registry.add_recognizer(r)
    registry.add_recognizer(SpacyRecognizer(supported_entities=sorted(set(NER_LABELS.values()))))
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


def _trim(result: RecognizerResult, text: str, lexicon: frozenset[str]) -> RecognizerResult | None:
    """An NER hit, cut down to its non-clinical words, or None when nothing is left: hits made only of clinical
    words (eponyms, drugs, headings, words the corpus writes in lower case), all-capital acronyms and headings
    ("STIR", "MLO", "NM BONE SCAN"), abbreviations ("M.D.") and notation with digits ("G2P1") are not names.
    A pattern recognizer's hit is kept as it is."""
    if result.recognition_metadata.get(RecognizerResult.RECOGNIZER_NAME_KEY) != "SpacyRecognizer":
        return result
    span = text[result.start : result.end]
    if any(c.isdigit() for c in span) or span.isupper() or re.search(r"[A-Za-z]\.[A-Za-z]", span):
        return None
    words = [(m.start(), m.end()) for m in _WORD.finditer(span) if not is_clinical(m.group(0), lexicon)]
    if not words:
        return None
    result.start, result.end = result.start + words[0][0], result.start + words[-1][1]
    return result


def merge_spans(results: list[RecognizerResult], text: str, lexicon: frozenset[str], threshold: float) -> list[Span]:
    """Kept results above `threshold` (a span made only of earlier de-identification placeholders is not PHI),
    overlaps merged into their union (recall first); the merged span takes the
    entity of its highest-scoring part (patterns win ties over NER)."""
    trimmed = (_trim(r, text, lexicon) for r in results if r.score >= threshold)
    kept = sorted(
        (r for r in trimmed if r is not None and not _ONLY_PLACEHOLDERS.fullmatch(text[r.start : r.end].lower())),
        key=lambda r: (r.start, -r.end),
    )
    merged: list[Span] = []
    for r in kept:
        name = str(r.recognition_metadata.get(RecognizerResult.RECOGNIZER_NAME_KEY, ""))
        rank = r.score + (0.01 if name != "SpacyRecognizer" else 0.0)
        if merged and r.start < merged[-1].end:
            last = merged[-1]
            best = (r.entity_type, rank, name) if rank > last.score else (last.entity, last.score, last.recognizer)
            merged[-1] = Span(last.start, max(last.end, r.end), best[0], best[1], best[2])
        else:
            merged.append(Span(r.start, r.end, r.entity_type, rank, name))
    return merged


class Analyzer:
    """Analyse texts in batches: presidio with datakit's recognizers over the gated spaCy engine."""

    def __init__(self, model: str, lexicon: frozenset[str], gate: bool, threshold: float, batch_size: int) -> None:
        self.nlp_engine = GatedSpacyNlpEngine(model, lexicon, gate, batch_size)
        self.engine = build_analyzer(self.nlp_engine)
        self.lexicon = lexicon
        self.threshold = threshold

    def analyze(self, texts: list[str]) -> list[list[Span]]:
        out = []
        for text, artifacts in self.nlp_engine.process_batch(texts, "en"):
            results = self.engine.analyze(text, language="en", nlp_artifacts=artifacts)
            out.append(merge_spans(results, text, self.lexicon, self.threshold))
        return out


def model_version(model: str) -> str:
    meta = spacy.load(model, exclude=[*NOT_NER, "ner"]).meta
    return f"{meta.get('lang', 'en')}_{meta.get('name', model)}-{meta.get('version', '?')}"
