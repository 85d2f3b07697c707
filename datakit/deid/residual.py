"""An independent residual-PHI scan of the de-identified output: a second detector set-up, for the audit.

The de-identifier finds PHI with patterns, a gazetteer, cue rules and NER behind a gate. This scan reads what it
wrote with a different set-up: spaCy NER on **every** line (no gate) of the truecased output, plus two lexicons
(census names that are rare as English words, gazetteer places). What the de-identifier inserted (surrogates,
tags) is blanked first, so only text it left is read. A hit that is made only of clinical words, acronyms or
notation is not counted (as in the de-identifier). The scan runs on a deterministic share of the records
(`deid.residual_scan_share`); the stage counts hits by type in `reports/deid.json` (counts, never text) and fails
closed when flagged records per 1,000 scanned exceed `deid.max_residual_per_1k_records`. A record longer than
`RECORD_CHARS` counts as one record per `RECORD_CHARS` begun (a 9,000-character conversation and its note as
five): the chance of a stray hit grows with the text, and the limit was set on reports.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import polars as pl

from datakit.deid.engine import FACILITY_WORD, WORD, is_notation
from datakit.deid.nercache import NerCache
from datakit.deid.normalize import fold
from datakit.deid.truecase import CLINICAL_SHAPE, Truecaser, caseless_lines, line_case

# generic drug-name stems (USAN): a word ending so is a drug, not a name
DRUG_STEMS = re.compile(
    r"^[a-z]{3,}(mycin|micin|cillin|cycline|floxacin|azole|tidine|pril|sartan|olol|dipine|statin|gliptin|gliflozin|"
    r"parin|xaban|gatran|mab|nib|vir|semide|thiazide|sone|olone|triptan|setron|barbital|zepam|zolam|profen|"
    r"oxetine|traline|amine|caine|dronate|lukast|terol|tropium|glitazone|formin)$"  # not "caine", "mccaine"
)
_SENTENCE_START = re.compile(r"(?:^|[.:;!?]\s+|\n)\s*$")
# medical terms by their shape beyond the truecaser's: "colpocephaly", "dysplasia", "hematuria", "oncocytoma"
MORE_CLINICAL_SHAPES = re.compile(r"^[a-z]{3,}(?:plasia|cephaly|phaly|uria|cytes?|emic|genic|megaly|ptysis)$")
RECORD_CHARS = 2000  # a radiology report is well within one; an ACI-Bench conversation with its note ~5
NER_KINDS = {"PERSON": "NER_PERSON", "GPE": "NER_PLACE", "LOC": "NER_PLACE", "FAC": "NER_PLACE", "ORG": "NER_ORG"}


def selected(texts: list[str | None], share: float) -> bool:
    """Whether a record is in the scanned share (by a hash of its texts: the same records on every run)."""
    if share >= 1:
        return True
    if share <= 0:
        return False
    digest = hashlib.sha256("\x1f".join(t or "" for t in texts).encode()).digest()
    return int.from_bytes(digest[:4], "big") < share * 2**32


def blank(text: str, inserted: list[tuple[int, int]]) -> str:
    """`text` with the de-identifier's insertions replaced by spaces (same offsets)."""
    chars = list(text)
    for a, b in inserted:
        chars[a:b] = " " * (b - a)
    return "".join(chars)


class ResidualScanner:
    """NER on every line plus name and place lexicons, over what the de-identifier left."""

    def __init__(
        self,
        nlp: Any,
        truecaser: Truecaser,
        is_clinical: Callable[[str], bool],
        rare_names: frozenset[str],
        recurring: frozenset[str] = frozenset(),
        ner: NerCache | None = None,
    ) -> None:
        self.nlp = nlp
        # NER of lines read before (the de-identifier's cache over the same pipeline: a template line is read once
        # for both): the same entities, so the scan stays what it was, only cheaper
        self.ner = ner if ner is not None else NerCache(nlp)
        self.truecaser = truecaser
        self.is_clinical = is_clinical
        self.rare_names = rare_names
        self.recurring = recurring  # read by the lexicons only: an NER hit on a recurring name still counts

    def _not_phi(self, span: str) -> bool:
        """As the de-identifier's NER trim reads a hit: notation, or clinical words only; and (NER's own false
        hits in notes) a drug by its stem ("azithromycin") or ordinary English words no name list knows
        ("Daughter can be reached")."""
        words = WORD.findall(span)
        return (
            is_notation(span)
            or not words
            or all(
                self.is_clinical(w)
                or DRUG_STEMS.search(w.lower())
                or (
                    (CLINICAL_SHAPE.match(w.lower()) or MORE_CLINICAL_SHAPES.search(w.lower()))
                    and w.lower() not in self.truecaser.names
                )
                for w in words
            )
            or all(w.lower() in self.truecaser.ordinary and w.lower() not in self.truecaser.names for w in words)
        )

    def scan(self, text: str, inserted: list[tuple[int, int]]) -> Counter[str]:
        """Hits by kind in what is left of `text` (counts only): see `scan_many`."""
        return self.scan_many([(text, inserted)])[0]

    def scan_many(self, items: list[tuple[str, list[tuple[int, int]]]], batch_size: int = 256) -> list[Counter[str]]:
        """Hits by kind in what is left of each (text, inserted) (counts only); NER reads the lines of every text in
        one batched pass. In a line of one case the capitals NER reads were written by the truecaser, so there an
        NER hit counts only with a word a name or place list knows."""
        hits: list[Counter[str]] = [Counter() for _ in items]
        lines: list[tuple[int, bool, str]] = []  # (item, case-less line, its view)
        lefts = []
        for i, (text, inserted) in enumerate(items):
            left = fold(blank(text, inserted))  # what a reader sees: invisible characters out (`normalize`)
            view = self.truecaser.view(left)
            lefts.append((left, view))
            for a, b in zip(left.split("\n"), view.split("\n"), strict=True):
                caseless = line_case(a) != "mixed"
                # a line where no hit could count is not read (the same counts, less NER): a case-less line with no
                # word the name and place lists know, a mixed line with no capital
                if caseless and not any(self.truecaser.is_name_or_place(w) for w in WORD.findall(b)):
                    continue
                if not caseless and not any(c.isupper() for c in a):
                    continue
                lines.append((i, caseless, b))
        for (i, caseless, line), ents in zip(lines, self.ner.entities((b for *_, b in lines), batch_size), strict=True):
            for start, end, label in ents:
                kind = NER_KINDS.get(label)
                text = line[start:end]
                if not kind or self._not_phi(text):
                    continue
                if kind == "NER_ORG" and not FACILITY_WORD.search(text):
                    continue  # an organisation is PHI as a place of care (the de-identifier's rule too)
                words = WORD.findall(text)
                known = any(self.truecaser.is_name_or_place(w) for w in words)
                if caseless and not known:
                    continue
                if not caseless and not any(w[:1].isupper() for w in words):  # as written, names have capitals
                    continue
                # a lone capitalised word that opens a sentence and no name or place list knows is how reports
                # begin sentences with their own terms ("Multiplanar reformats were reviewed"): not counted
                if not known and len(words) == 1 and _SENTENCE_START.search(line[:start]):
                    continue
                hits[i][kind] += 1
        for (left, view), found in zip(lefts, hits, strict=True):
            found.update(self._lexicon_hits(left, view))
        return hits

    def _lexicon_hits(self, left: str, view: str) -> Counter[str]:
        hits: Counter[str] = Counter()
        caseless_spans = list(caseless_lines(left))
        for m in WORD.finditer(view):
            low = m.group(0).lower()
            as_written = not any(a <= m.start() < b for a, b in caseless_spans)
            if self.is_clinical(low) or low in self.recurring or (as_written and not left[m.start()].isupper()):
                continue
            if low in self.rare_names:
                hits["NAME_LEXICON"] += 1
            elif low in self.truecaser.places:
                hits["PLACE_LEXICON"] += 1
        return hits


RECURRING_PATIENTS = 3  # a word in the records of this many patients (and RECURRING_SHARE of them) is the corpus's
RECURRING_SHARE = 0.01  # own shorthand, not one patient's identifier ("endo", "aline", "perl" are census names too)


def recurring_words(texts: pl.Series, patients: pl.Series) -> frozenset[str]:
    """Lower-case words written in the records of at least `RECURRING_PATIENTS` patients and `RECURRING_SHARE`
    of them: the scan's name and place lexicons do not count them (a word many patients' notes share is the
    corpus's shorthand, "endo", "perl", or a clinician's name; its NER hits, where NER reads a name, still count)."""
    frame = pl.DataFrame({"p": patients.cast(pl.String), "t": texts.fill_null("").str.to_lowercase()})
    words = frame.select("p", pl.col("t").str.extract_all(r"[a-z][a-z'\-]+").alias("w")).explode("w").unique()
    floor = max(RECURRING_PATIENTS, int(RECURRING_SHARE * patients.n_unique()))
    counted = words.drop_nulls("w").group_by("w").len().filter(pl.col("len") >= floor)
    return frozenset(counted["w"].to_list())


def record_units(texts: list[str | None]) -> int:
    """How many records a record counts as in the scan's rate: one per `RECORD_CHARS` characters begun."""
    chars = sum(len(t) for t in texts if t)
    return max(1, -(-chars // RECORD_CHARS))


Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson_interval(flagged: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `flagged / n` (0..1; (0, 1) when n is 0): honest at small n and
    at proportions near 0, where the normal approximation is not."""
    if n <= 0:
        return 0.0, 1.0
    p = flagged / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(scans: list[Counter[str] | None], limit_per_1k: float, units: list[int] | None = None) -> dict[str, Any]:
    """The audit's `independent_scan` section: records scanned and flagged, hits by kind, the rate with its 95%
    interval, the verdict. `units`: what each record counts as (`record_units`; default one each).

    The verdict reads the interval, not the point: the scan fails when even the interval's lower end passes the
    limit (7 flagged of 81 scanned is 86 per 1,000, but its interval, 42-168, does not show a rate over 50); with
    nothing scanned it neither passes nor fails (`passed` is None)."""
    weights = units if units is not None else [1] * len(scans)
    done = [s for s in scans if s is not None]
    counted = sum(w for s, w in zip(scans, weights, strict=True) if s is not None)
    flagged = sum(1 for s in done if s)
    total: Counter[str] = Counter()
    for s in done:
        total.update(s)
    rate = round(1000 * flagged / counted, 2) if done else 0.0
    low, high = wilson_interval(flagged, counted)
    return {
        "record_units": counted,
        "record_chars": RECORD_CHARS,
        "detectors": ["spaCy NER on every line (no gate), truecased", "census names rare as words", "gazetteer places"],
        "records_scanned": len(done),
        "records_flagged": flagged,
        "flagged_per_1k_records": rate,
        "interval_95_per_1k_records": [round(1000 * low, 2), round(1000 * high, 2)],
        "max_flagged_per_1k_records": limit_per_1k,
        "rule": "fails when the lower end of the 95% interval (Wilson) of flagged records per 1,000 passes the limit",
        "passed": (1000 * low <= limit_per_1k) if done else None,  # None: no record to scan (never "passed")
        "hits_by_kind": dict(sorted(total.items())),
        "note": "what the de-identifier left, read by a second set-up; counts only, never text",
    }
