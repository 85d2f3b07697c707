"""An annotated PHI set built from real reports: PHI of every type planted into real IU report text, with the
character spans kept, and the measures the issue asks for (recall/precision by character, clinical words lost)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import polars as pl

FIRST = ["James", "Maria", "Robert", "Linda", "Michael", "Susan", "David", "Karen", "Thomas", "Nancy", "Daniel"]
LAST = ["Okafor", "Lindqvist", "Brennan", "Castillo", "Nakamura", "Petrov", "Haddad", "Moreau", "Kowalczyk", "Reyes"]
CITY = ["Indianapolis", "Bloomington", "Carmel", "Fishers", "Lafayette", "Muncie", "Evansville"]
FAC = ["Riverside General Hospital", "St. Vincent Medical Center", "Methodist Imaging Center", "Eskenazi Clinic"]


@dataclass
class Annotated:
    text: str
    spans: list[tuple[int, int, str]]  # (start, end, type)


def _templates(r: random.Random) -> list[tuple[str, dict[str, str]]]:
    first, last = r.choice(FIRST), r.choice(LAST)
    doc_first, doc_last = r.choice(FIRST), r.choice(LAST)
    y, m, d = r.randint(2015, 2024), r.randint(1, 12), r.randint(1, 28)
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]
    mon = months[(m - 1) % 10]
    return [
        (
            "PATIENT: {NAME}    MRN: {MRN}    DOB: {DOB}",
            {
                "NAME": f"{last.upper()}, {first.upper()}",
                "MRN": str(r.randint(10**7, 10**8 - 1)),
                "DOB": f"{m:02d}/{d:02d}/{r.randint(1930, 1999)}",
            },
        ),
        (
            "ACCESSION: {ACC}    DATE OF SERVICE: {DATE} {TIME}",
            {
                "ACC": f"A{r.randint(10**8, 10**9 - 1)}",
                "DATE": f"{y}-{m:02d}-{d:02d}",
                "TIME": f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}",
            },
        ),
        ("COMPARISON: Chest radiograph dated {DATE}.", {"DATE": f"{mon} {d}, {y}"}),
        ("Prior study from {DATE} was reviewed.", {"DATE": f"{d:02d}-{mon[:3]}-{y}"}),
        (
            "Findings were discussed with Dr. {NAME} by telephone at {TIME} on {DATE}.",
            {
                "NAME": f"{doc_first} {doc_last}",
                "TIME": f"{r.randint(1, 12)}:{r.randint(10, 59)} PM",
                "DATE": f"{m}/{d}/{y % 100:02d}",
            },
        ),
        (
            "Critical result called to {NAME}, NP, at {PHONE}.",
            {
                "NAME": f"{doc_first} {doc_last}",
                "PHONE": f"({r.randint(200, 999)}) {r.randint(200, 999)}-{r.randint(1000, 9999)}",
            },
        ),
        ("Electronically signed by: {NAME}, MD", {"NAME": f"{doc_first} {doc_last}"}),
        ("Patient is a {AGE}-year-old with cough.", {"AGE": str(r.randint(90, 104))}),
        ("Copy to {EMAIL}", {"EMAIL": f"{doc_first.lower()}.{doc_last.lower()}@iuhealth.org"}),
        (
            "Images available at {URL} from workstation {IP}.",
            {
                "URL": f"https://pacs.iuhealth.org/s/{r.randint(1, 99999)}",
                "IP": f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
            },
        ),
        ("SSN on file {SSN}.", {"SSN": f"{r.randint(100, 899)}-{r.randint(10, 99)}-{r.randint(1000, 9999)}"}),
        (
            "{FAC}, {STREET}, {CITY}",
            {
                "FAC": r.choice(FAC),
                "STREET": f"{r.randint(10, 9999)} Meridian Street",
                "CITY": f"{r.choice(CITY)}, IN {r.randint(46000, 47999)}",
            },
        ),
        # no cue word: only NER can find these
        ("{NAME_UNCUED} was informed of the results at the bedside.", {"NAME_UNCUED": f"{first} {last}"}),
        ("Transferred from {CITY_UNCUED} for further evaluation.", {"CITY_UNCUED": r.choice(CITY)}),
        (
            "Pacemaker serial number: {SERIAL}. Account No: {ACCT}.",
            {
                "SERIAL": f"PJN{r.randint(10**5, 10**6 - 1)}",
                "ACCT": f"{r.randint(10, 99)}-{r.randint(10**6, 10**7 - 1)}",
            },
        ),
    ]


def plant(texts: list[str], seed: int = 7, per_report: int = 4) -> list[Annotated]:
    """Each real report gets `per_report` PHI lines (chosen by seed) before or after its text."""
    r = random.Random(seed)
    out = []
    for text in texts:
        lines = [text]
        for template, values in r.sample(_templates(r), per_report):
            lines.insert(
                r.randint(0, len(lines)),
                template.format(**values) + "\0" + "\0".join(f"{k}={v}" for k, v in values.items()),
            )
        body, spans = "", []
        for i, line in enumerate(lines):
            if "\0" in line:
                rendered, *pairs = line.split("\0")
                for pair in pairs:
                    kind, value = pair.split("=", 1)
                    start = rendered.index(value)
                    spans.append((len(body) + start, len(body) + start + len(value), kind))
                line = rendered
            body += line + ("\n" if i < len(lines) - 1 else "")
        out.append(Annotated(body, spans))
    return out


RENDERINGS = ("as_written", "upper", "lower")


def _same_length_case(text: str, how: str) -> str:
    """`text` in upper or lower case, character by character (a character whose case form is longer, like "ß",
    stays as it is), so every planted span keeps its offsets."""
    change = str.upper if how == "upper" else str.lower
    return "".join(c2 if len(c2 := change(c)) == 1 else c for c in text)


def render(annotated: list[Annotated], how: str) -> list[Annotated]:
    """The same notes as written, in ALL CAPITALS or all lower case (legacy exports, nursing systems, dictation)."""
    if how == "as_written":
        return annotated
    if how not in RENDERINGS:
        raise ValueError(f"rendering {how!r}: one of {RENDERINGS}")
    return [Annotated(_same_length_case(a.text, how), a.spans) for a in annotated]


def char_scores(annotated: list[Annotated], found: list[list[tuple[int, int]]]) -> dict[str, object]:
    """PHI recall and precision by character, phrase recall (a phrase counts when all its letters and digits are
    removed), per-type recall, and the share of clinical (non-PHI) words changed."""
    tp = fn = fp = 0
    phrases = phrases_found = 0
    per: dict[str, list[int]] = {}
    words_total = words_lost = 0
    for a, spans in zip(annotated, found, strict=True):
        gold = [False] * len(a.text)
        for s, e, kind in a.spans:
            for i in range(s, e):
                gold[i] = True
            hit = sum(1 for i in range(s, e) if any(fs <= i < fe for fs, fe in spans))
            phrases += 1  # a phrase is removed when every letter and digit of it is
            phrases_found += all(any(fs <= i < fe for fs, fe in spans) for i in range(s, e) if a.text[i].isalnum())
            per.setdefault(kind, [0, 0])
            per[kind][0] += hit
            per[kind][1] += e - s
        pred = [False] * len(a.text)
        for s, e in spans:
            for i in range(s, e):
                pred[i] = True
        tp += sum(g and p for g, p in zip(gold, pred, strict=True))
        fn += sum(g and not p for g, p in zip(gold, pred, strict=True))
        fp += sum(p and not g for g, p in zip(gold, pred, strict=True))
        import re

        for m in re.finditer(r"\S+", a.text):
            if any(gold[m.start() : m.end()]):
                continue
            words_total += 1
            words_lost += any(pred[m.start() : m.end()])
    return {
        "recall": round(tp / max(1, tp + fn), 4),
        "phrase_recall": round(phrases_found / max(1, phrases), 4),
        "phrases": phrases,
        "precision": round(tp / max(1, tp + fp), 4),
        "clinical_words_lost": round(words_lost / max(1, words_total), 4),
        "per_type_recall": {k: round(v[0] / max(1, v[1]), 4) for k, v in sorted(per.items())},
    }


def iu_texts(csv: str, n: int) -> list[str]:
    df = pl.read_csv(csv).filter(pl.col("findings").is_not_null())
    return (
        df.head(n)
        .select(
            pl.concat_str(
                [
                    pl.lit("INDICATION: "),
                    pl.col("indication").fill_null(""),
                    pl.lit("\nFINDINGS: "),
                    "findings",
                    pl.lit("\nIMPRESSION: "),
                    pl.col("impression").fill_null(""),
                ]
            )
        )
        .to_series()
        .to_list()
    )
