"""The PhysioNet deid gold standard (Neamatullah et al. 2008): real ICU nursing and progress notes whose PHI are
annotated surrogates, as `../shared/real_data/physionet_deid/notes.jsonl` holds them (see its SOURCES.md).

Two fixed, patient-level halves: `tuning` (rules and the tagger are written from its misses) and `holdout` (never
looked at while tuning; its figure is the one to quote). A patient is in the hold-out when the first byte of
sha256("physionet-holdout:<patient>") is below 77 (~30%), so the split does not depend on file order.

Scoring is by phrase, as the corpus's own evaluation does: a gold phrase is found when every letter and digit of
it is inside a detected span; precision is by word: of the words a detection touches, the share that are gold PHI.
Year-only dates (`DateYear`) may stay under HIPAA Safe Harbor: they are neither counted as misses nor, when
detected, as false alarms.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NOTES = Path("physionet_deid") / "notes.jsonl"
FAMILIES = {
    "PTName": "names",
    "PTNameInitial": "names",
    "RelativeProxyName": "names",
    "HCPName": "names",
    "Date": "dates",
    "Age": "ages",
    "Location": "locations",
    "Phone": "phones_ids",
    "Other": "phones_ids",
}
NOT_SCORED = {"DateYear"}  # may stay under Safe Harbor: neither a miss nor a false alarm
_WORD = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class Note:
    note_id: str
    patient: int
    text: str
    phi: tuple[tuple[int, int, str], ...]  # (start, end, kind)


def load(real_data: Path) -> list[Note]:
    rows = [json.loads(line) for line in (real_data / NOTES).read_text().splitlines() if line.strip()]
    return [
        Note(r["note_id"], int(r["patient"]), r["text"], tuple((p["start"], p["end"], p["kind"]) for p in r["phi"]))
        for r in rows
    ]


def in_holdout(patient: int) -> bool:
    return hashlib.sha256(f"physionet-holdout:{patient}".encode()).digest()[0] < 77


def split(notes: Sequence[Note]) -> tuple[list[Note], list[Note]]:
    """(tuning, holdout), by patient."""
    return [n for n in notes if not in_holdout(n.patient)], [n for n in notes if in_holdout(n.patient)]


def fold_of(patient: int, folds: int) -> int:
    """The cross-validation fold of a tuning patient (by hash, like the hold-out)."""
    return int.from_bytes(hashlib.sha256(f"physionet-fold:{patient}".encode()).digest()[:4], "big") % folds


DEV_SHARE = 0.15
DEV_SEED = 13


def dev_split(tuning: Sequence[Note], share: float = DEV_SHARE, seed: int = DEV_SEED) -> tuple[list[Note], list[Note]]:
    """(train, dev) of the tuning half, by patient: the tagger trains on the first and stops early on the second,
    so the dev patients' misses are misses on unseen patients that tuning may look at (the hold-out stays shut)."""
    patients = sorted({n.patient for n in tuning})
    random.Random(seed).shuffle(patients)
    dev = set(patients[: max(1, int(len(patients) * share))])
    return [n for n in tuning if n.patient not in dev], [n for n in tuning if n.patient in dev]


@dataclass
class Miss:
    note_id: str
    kind: str
    start: int
    end: int


def _covered(text: str, start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return all(any(a <= i < b for a, b in spans) for i in range(start, end) if text[i].isalnum())


def score(notes: Sequence[Note], found: Sequence[Sequence[tuple[int, int]]]) -> dict[str, object]:
    """Phrase recall per kind family and overall, word precision, and the misses (ids and offsets, for tuning)."""
    per: dict[str, list[int]] = {}
    misses: list[Miss] = []
    words_hit = words_true = 0
    false_alarms: list[tuple[str, int, int]] = []
    for note, spans in zip(notes, found, strict=True):
        for start, end, kind in note.phi:
            if kind in NOT_SCORED:
                continue
            family = FAMILIES.get(kind, "other")
            counts = per.setdefault(family, [0, 0])
            counts[1] += 1
            if _covered(note.text, start, end, spans):
                counts[0] += 1
            else:
                misses.append(Miss(note.note_id, kind, start, end))
        gold = [(a, b) for a, b, _ in note.phi]
        for m in _WORD.finditer(note.text):
            if not any(a < m.end() and m.start() < b for a, b in spans):
                continue
            words_hit += 1
            if any(a < m.end() and m.start() < b for a, b in gold):
                words_true += 1
            else:
                false_alarms.append((note.note_id, m.start(), m.end()))
    found_total = sum(v[0] for v in per.values())
    gold_total = sum(v[1] for v in per.values())
    return {
        "notes": len(notes),
        "patients": len({n.patient for n in notes}),
        "phrases": gold_total,
        "phrase_recall": round(found_total / max(1, gold_total), 4),
        "recall_by_family": {k: round(v[0] / max(1, v[1]), 4) for k, v in sorted(per.items())},
        "phrases_by_family": {k: v[1] for k, v in sorted(per.items())},
        "word_precision": round(words_true / max(1, words_hit), 4),
        "words_detected": words_hit,
        "misses": misses,
        "false_alarms": false_alarms,
    }
