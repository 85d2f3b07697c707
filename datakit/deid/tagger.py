"""A learned PHI tagger beside the rules: a small spaCy NER pipeline trained here on clinical notes, shipped in the
package (`datakit/deid/models/phi_tagger/`, a few MB; nothing is downloaded at run time).

It reads the whole text (no gate) and labels `NAME`, `DATE`, `LOCATION` (hospitals, wards, units, towns), `ID`
(phone, pager and record numbers in any shape) and `AGE` (over 89); the analyzer turns its entities into presidio
results and merges them with the pattern, gazetteer, cue and general NER results (recall first). It was trained
by `bench/train_phi_tagger.py` on the tuning half of the PhysioNet deid notes (`datakit.evaluation.physionet`) and
the tuning sets of `datakit.evaluation.wide_phi`, each in three renderings (as written, ALL CAPS, all lower
case); the model's `meta.json` lists what it was trained on and its scores. `deid.tagger` names another model
folder (production may train its own on its notes) or turns it off (`""`).

The tokenizer is English's with a few more splits that clinical shorthand needs ("DR.GATEMAN", "fx4/97",
"Baker-212", "w/freq"); the same function builds it in training and at run time, so the model never sees a
token boundary it was not trained on.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

import spacy
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex

from datakit.deid.nercache import NerCache
from datakit.deid.recognizers import local_result

BUILTIN = "builtin"
MODEL_DIR = Path(__file__).parent / "models" / "phi_tagger"
LABELS = ("NAME", "DATE", "LOCATION", "ID", "AGE")
ENTITY = {  # the tagger's labels as presidio entity types (the operators and surrogates key on these)
    "NAME": "PERSON",
    "DATE": "DATE_TIME",
    "LOCATION": "LOCATION",
    "ID": "ACCOUNT_NUMBER",
    "AGE": "AGE_OVER_89",
}
SCORE = 0.8
NAME = "PhiTagger"
_EXTRA_INFIXES = (
    r"(?<=[A-Za-z])\.(?=[A-Za-z]{2})",  # DR.GATEMAN, mr.renzi, ross.pacing
    r"(?<=[A-Za-z])(?=\d)",  # fx4/97, QUARTERMAIN3
    r"(?<=\d)(?=[A-Za-z]{2})",  # 30MG, 2115pm
    r"(?<=[A-Za-z0-9/])-(?=[A-Za-z0-9(])",  # Baker-212, UO-9/10, 202-6694, 9/30-ef
    r"(?<=[A-Za-z])/(?=[A-Za-z])",  # w/freq, GERTRUDE/DR
    r"(?<=[\w)])[,;:](?=[\w(])",  # 3/11,RESULTS  (:(  none of which sit inside PHI)
)


@spacy.registry.tokenizers("datakit.clinical_tokenizer.v1")
def clinical_tokenizer() -> Callable[[Language], Tokenizer]:
    """English's tokenizer with the extra infix splits of `_EXTRA_INFIXES` (named in the model's config, so
    training and loading build the same one)."""

    def create(nlp: Language) -> Tokenizer:
        d = nlp.Defaults
        return Tokenizer(
            nlp.vocab,
            rules=d.tokenizer_exceptions,
            prefix_search=compile_prefix_regex(d.prefixes or ()).search,
            suffix_search=compile_suffix_regex(d.suffixes or ()).search,
            infix_finditer=compile_infix_regex([*(d.infixes or ()), *_EXTRA_INFIXES]).finditer,
            token_match=d.token_match,
            url_match=d.url_match,
        )

    return create


def model_path(name: str) -> Path | None:
    """The model folder a `deid.tagger` value names (`builtin`: the packaged one; "": none)."""
    if not name:
        return None
    return MODEL_DIR if name == BUILTIN else Path(name).expanduser()


@functools.cache
def fingerprint(name: str) -> str:
    """sha256 over the model folder's files (names and bytes): the audit and the config hash name the exact model."""
    path = model_path(name)
    if path is None:
        return ""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


class PhiTagger:
    """The learned tagger: entities (start, end, presidio entity) per text, in characters."""

    def __init__(self, name: str = BUILTIN, batch_size: int = 64) -> None:
        path = model_path(name)
        if path is None or not (path / "meta.json").is_file():
            raise FileNotFoundError(f"no PHI tagger model at {path}")
        self.nlp = spacy.load(path)  # its config names `datakit.clinical_tokenizer.v1`, registered above
        self.batch_size = batch_size
        self.ner = NerCache(self.nlp, batch_size)  # the windows of template lines repeat: each read once

    def entities(self, texts: list[str]) -> list[list[tuple[int, int, str]]]:
        return [[(a, b, ENTITY[label]) for a, b, label in ents if label in ENTITY] for ents in self.ner.entities(texts)]


class PhiTaggerRecognizer(LocalRecognizer):
    """The tagger as a presidio recognizer: `analyze` for one text (presidio's interface), `analyze_many` for a
    batch (what the analyzer calls: one spaCy pipe over all texts)."""

    def __init__(self, name: str = BUILTIN, batch_size: int = 64) -> None:
        self.tagger = PhiTagger(name, batch_size)
        super().__init__(supported_entities=sorted(set(ENTITY.values())), name=NAME, supported_language="en")

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [r for r in self.analyze_many([text])[0] if not entities or r.entity_type in entities]

    def analyze_many(self, texts: list[str]) -> list[list[RecognizerResult]]:
        return [
            [local_result(self, entity, a, b, SCORE, "learned PHI tagger") for a, b, entity in ents]
            for ents in self.tagger.entities(texts)
        ]
