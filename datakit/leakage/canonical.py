"""Canonical text for the paraphrase layer: what an edited copy and its original still have in common.

On top of `content.normalise_text` (case, spacing, punctuation, de-id placeholders), `canonical_text`:

1. writes clinical synonyms and abbreviations one way (`LEXICON`: each group's variants become its first
   entry: `ptx` -> `pneumothorax`, `stable` -> `unchanged`, `rll` -> `right lower lobe`);
2. removes dictation boilerplate that a copy gains and its original lacks: sign-off sentences (`dictated by`,
   `electronically signed`, `read by`, `i have personally reviewed`, voice-recognition disclaimers), header
   fields (`accession`, `acc#`, `mrn`, `date of service`, `study date`, `referring`/`ordering` clinician),
   dates, clock times and long digit runs (accession-like numbers); measurements such as `5 mm` stay;
3. drops filler words that paraphrase freely (`the`, `is`, `are`, `there`, `of`, `and`, `appear`...).

The lexicon is datakit's, written from common radiology usage; the evaluation harness
(`datakit.evaluation.paraphrase_leaks.SYNONYMS`) has its own list, with wording this one does not know.
"""

from __future__ import annotations

import re

import polars as pl

from datakit.content import normalise_text

# each group: canonical form first, then the variants written instead of it
LEXICON: tuple[tuple[str, ...], ...] = (
    (
        "no acute cardiopulmonary abnormality",
        "no acute cardiopulmonary process",
        "no acute cardiopulmonary disease",
        "no acute cardiopulmonary findings",
        "no acute cardiopulmonary abnormalities",
        "no acute cardiopulmonary change",
    ),
    ("no acute disease", "no active disease", "no acute process", "no acute abnormality", "no acute findings"),
    ("pneumothorax", "ptx", "pneumothoraces"),
    ("pleural effusion", "pleural fluid", "pleural effusions", "effusions", "effusion"),
    ("unchanged", "stable", "not changed", "no interval change", "without change"),
    ("cardiomegaly", "enlarged heart", "cardiac enlargement", "enlarged cardiac silhouette", "heart is enlarged"),
    ("normal", "within normal limits", "wnl", "unremarkable", "intact", "grossly normal"),
    ("consolidation", "airspace disease", "airspace consolidation", "air space disease", "consolidations"),
    ("atelectasis", "atelectatic change", "atelectatic changes", "subsegmental collapse", "volume loss"),
    ("clear", "free of infiltrate", "without infiltrate", "free of consolidation"),
    ("no", "no evidence of", "there is no", "there are no", "without", "w/o", "negative for", "no signs of"),
    ("bilateral", "bilat", "both", "bilaterally"),
    ("right lower lobe", "rll"),
    ("left lower lobe", "lll"),
    ("right upper lobe", "rul"),
    ("left upper lobe", "lul"),
    ("right middle lobe", "rml"),
    ("right", "rt"),
    ("left", "lt"),
    (
        "cardiomediastinal silhouette",
        "heart and mediastinum",
        "cardiomediastinal contours",
        "cardiomediastinal contour",
        "cardiac and mediastinal contours",
        "cardiac and mediastinal silhouettes",
        "mediastinal contours",
        "mediastinum",
        "cardiac silhouette",
        "heart and mediastinal contours",
    ),
    ("heart size", "cardiac size", "size of the heart"),
    ("normal size", "normal in size", "of normal size"),
    (
        "degenerative changes",
        "djd",
        "degenerative disease",
        "spondylosis",
        "degenerative change",
        "spondylotic changes",
    ),
    ("thoracic spine", "t-spine", "dorsal spine", "thoracic vertebrae"),
    ("calcified granuloma", "granulomatous calcification", "calcified granulomatous nodule", "calcified granulomas"),
    ("congestive heart failure", "chf", "heart failure"),
    ("chronic obstructive pulmonary disease", "copd"),
    ("pulmonary edema", "vascular congestion", "pulmonary oedema", "pulmonary vascular congestion", "edema"),
    ("opacity", "opacification", "density", "opacities", "densities", "opacifications"),
    ("postoperative", "post-op", "post-surgical", "postsurgical", "post operative"),
    ("status post", "s/p"),
    ("compared", "compared to", "compared with", "relative to", "in comparison to", "comparison"),
    ("prior", "previous", "earlier", "preceding"),
    ("evidence of", "signs of", "findings of"),
    ("mild", "slight", "minimal", "mildly", "slightly"),
    ("seen", "visualized", "imaged", "identified", "noted", "demonstrated", "shown", "present", "observed"),
    ("osseous structures", "bony structures", "bones", "visualized osseous structures", "skeletal structures"),
    ("hyperinflated", "hyperexpanded", "overinflated", "hyperinflation", "hyperexpansion"),
    ("emphysema", "emphysematous changes", "copd changes", "emphysematous"),
    ("nodule", "nodular opacity", "nodular density"),
    ("chest radiograph", "cxr", "chest x-ray", "chest xray", "chest film", "radiograph", "x-ray", "film", "xray"),
    ("worse", "increased", "worsened", "greater", "worsening"),
    ("improved", "decreased", "lessened", "improving"),
    ("dyspnea", "shortness of breath", "sob"),
    ("costophrenic angles", "cp angles", "costophrenic sulci", "costophrenic angle"),
    ("endotracheal tube", "ett", "et tube"),
    ("nasogastric tube", "ngt", "ng tube"),
    ("focal", "localized"),
    ("lungs", "lung fields", "lung"),
    ("infiltrate", "infiltrates"),
    ("with", "w/"),
    ("large", "sizable"),
    ("small", "tiny"),
)
FILLER = (
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "were",
    "appear",
    "appears",
    "appeared",
    "there",
    "of",
    "and",
    "to",
    "in",
    "be",
    "been",
    "seen",
    "also",
    "again",
    "at",
    "or",
    "for",
    "on",
    "this",
    "these",
    "which",
)
# sentences and fields a dictated copy gains: sign-offs, header fields, disclaimers (matched after normalisation)
_BOILERPLATE = (
    r"(?:electronically )?(?:dictated|transcribed|signed|read|reviewed|verified|approved)"
    r"(?: and signed)? by:?[^.\x1f]{0,80}",
    r"electronically signed[^.\x1f]{0,80}",
    r"i have personally reviewed[^.\x1f]{0,120}",
    r"this report was (?:dictated|generated|transcribed)[^.\x1f]{0,120}",
    r"(?:minor|transcription|typographical) errors may[^.\x1f]{0,60}",
    r"(?:accession|acc)(?: no| number|#)?[:.#]?\s*[a-z0-9-]*\d[a-z0-9-]*",
    r"\bmrn[:#]?\s*[a-z0-9-]+",
    r"(?:date of service|study date|exam date|date of exam|dos|performed)[: ]",
    r"(?:(?:referring|ordering)(?: physician| clinician| provider| doctor)?|\bclinician|\bphysician):?(?: dr\.?)?"
    r"(?: [\p{L}'-]+){1,2},?(?: m\.?d\b\.?)?",
    r"radiology report",
    r"(?:^|[.\x1f] ?)(?:procedure|exam|examination|study)s?:",
    r"\bsigned(?: on)?\b",
    r"--\s*[^.\x1f]{0,60}",
    r"\bread by\b[^.\x1f]{0,60}",
    r"\b\d{1,2}/\d{1,2}/\d{2,4}\b",
    r"\b\d{4}-\d{2}-\d{2}\b",
    r"\b\d{1,2}:\d{2}(?::\d{2})?(?: ?[ap]\.?m\.?)?",
    r"\b\d{6,}\b",
    r"\b(?:m\.?d|d\.?o)\b\.?",
)


def _group_pattern(variants: tuple[str, ...]) -> str:
    ordered = sorted(variants, key=len, reverse=True)
    return r"(?:^|\b)(?:" + "|".join(re.escape(v) for v in ordered) + r")(?:\b|$)"


def canonical_text(expr: pl.Expr, lexicon: bool = True, normalised: bool = False) -> pl.Expr:
    """The canonical form of a text column (see the module docstring); `lexicon=False` skips step 1;
    `normalised=True`: the column already is `normalise_text` output (not normalised twice)."""
    text = expr if normalised else normalise_text(expr)
    text = text.str.replace_all("|".join(f"(?:{p})" for p in _BOILERPLATE), " ")
    if lexicon:
        # longest variants first across groups, so "no acute cardiopulmonary process" wins over "no"
        pairs = sorted(((v, group[0]) for group in LEXICON for v in group[1:]), key=lambda p: -len(p[0]))
        by_canonical: dict[str, list[str]] = {}
        for variant, canonical in pairs:
            by_canonical.setdefault(canonical, []).append(variant)
        order = sorted(by_canonical, key=lambda c: -max(len(v) for v in by_canonical[c]))
        for canonical in order:
            variants = (canonical, *by_canonical[canonical])  # the canonical form itself too: never doubled
            text = text.str.replace_all(_group_pattern(variants), f" {canonical} ")
    text = text.str.replace_all(r"\b(?:" + "|".join(FILLER) + r")\b", " ")
    return text.str.replace_all(r"[^\p{L}\p{N}\x1f%./-]+", " ").str.replace_all(r"\s+", " ").str.strip_chars()


def masked(frame: pl.DataFrame, column: str, spans: str = "phi_spans") -> pl.Series:
    """`column` with every de-identification replacement listed in `spans` (column, start, end) written as
    `[phi]`: a copy filed under another patient carries other surrogate names, places and dates than its
    original, and the words layer must not count them as differences. Without a `spans` column the text is
    returned as it is."""
    if spans not in frame.columns:
        return frame[column]
    out = []
    for text, items in zip(frame[column].to_list(), frame[spans].to_list(), strict=True):
        if text and items:
            cuts = sorted((s["start"], s["end"]) for s in items if s["column"] == column)
            pieces, pos = [], 0
            for start, end in cuts:
                if start < pos:
                    continue
                pieces += [text[pos:start], " [phi] "]
                pos = end
            text = "".join([*pieces, text[pos:]])
        out.append(text)
    return pl.Series(column, out, dtype=pl.String)
