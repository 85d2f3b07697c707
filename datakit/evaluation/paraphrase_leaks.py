"""Planted paraphrase copies and negative pairs: how strongly the leakage layers and the guard hold.

Each planted copy is one real report rewritten by one edit class (or a combination of two or three) and given a
**new patient, accession and case id**, so only the text can tie it to its original:

- `synonyms`: clinical synonyms and abbreviations swapped in (`SYNONYMS`, written for this harness; half of its
  entries are not in the leakage stage's canonicalisation lexicon, so the class also measures unseen wording);
- `sentence_drop`, `sentence_merge`, `reorder`: one sentence removed, two adjacent sentences joined, all shuffled;
- `header_signoff`: a dictation header and sign-off with dates, an accession and a clinician's name;
- `typos`: typing errors (swapped, dropped, doubled and neighbouring-key letters) in about one word in eight;
- `case_wrap`: the report in capitals or lower case, its lines re-wrapped at another width;
- `combined_2`, `combined_3`: two or three of the above, drawn per copy.

**Negative pairs** are pairs of different patients' reports of the same exam family and the same findings
family (the same first problem term for the IU reports; the same first ICD-10 category for the sample) whose
normalised texts differ: genuinely different reports that look alike. Linking them is a false link.

`score_run` reads a run directory (the leakage and assemble stages' outputs) and returns, per edit class:
pairs, grouped (same leakage group), straddling (one on each side of the train/eval split), twin shown as a shot
(either record's prompt holds the other), and for the negatives the share directly linked by a content layer and
the share in one group.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import textwrap
from pathlib import Path

import polars as pl

from datakit.rundir import LINKS

EDITS = ("synonyms", "sentence_drop", "sentence_merge", "reorder", "header_signoff", "typos", "case_wrap")
CLASSES = (*EDITS, "combined_2", "combined_3")
CONTENT_LINKS = ("exact", "near", "cosine", "words")

# (phrase, replacements): written for the harness. Matching is case-insensitive on word boundaries.
SYNONYMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("no acute cardiopulmonary abnormality", ("no acute cardiopulmonary process", "no acute cardiopulmonary disease")),
    ("no acute cardiopulmonary process", ("no acute cardiopulmonary abnormality", "no acute cardiopulmonary findings")),
    ("no acute cardiopulmonary disease", ("no acute cardiopulmonary process",)),
    ("no active disease", ("no acute disease", "no active cardiopulmonary disease")),
    ("pneumothorax", ("PTX",)),
    ("pleural effusions", ("pleural fluid collections", "effusions")),
    ("pleural effusion", ("pleural fluid", "effusion")),
    ("unchanged", ("stable", "not changed")),
    ("stable", ("unchanged",)),
    ("cardiomegaly", ("enlarged heart", "cardiac enlargement")),
    ("within normal limits", ("normal", "WNL")),
    ("consolidation", ("airspace disease", "airspace consolidation")),
    ("atelectasis", ("atelectatic change", "subsegmental collapse")),
    ("the lungs are clear", ("lungs are clear", "the lungs are free of infiltrate")),
    ("there is no", ("no evidence of", "without")),
    ("no evidence of", ("no", "there is no")),
    ("bilateral", ("bilat", "both")),
    ("right", ("rt",)),
    ("left", ("lt",)),
    ("right lower lobe", ("RLL",)),
    ("left lower lobe", ("LLL",)),
    ("right upper lobe", ("RUL",)),
    ("left upper lobe", ("LUL",)),
    ("right middle lobe", ("RML",)),
    ("cardiomediastinal silhouette", ("heart and mediastinum", "cardiomediastinal contours")),
    ("mediastinal contours", ("mediastinum",)),
    ("heart size", ("cardiac size", "size of the heart")),
    ("normal in size", ("normal size", "of normal size")),
    ("degenerative changes", ("DJD", "degenerative disease", "spondylosis")),
    ("thoracic spine", ("T-spine", "dorsal spine")),
    ("calcified granuloma", ("granulomatous calcification", "calcified granulomatous nodule")),
    ("congestive heart failure", ("CHF",)),
    ("chronic obstructive pulmonary disease", ("COPD",)),
    ("pulmonary edema", ("vascular congestion", "pulmonary oedema")),
    ("opacity", ("opacification", "density")),
    ("opacities", ("densities", "opacifications")),
    ("postoperative", ("post-op", "post-surgical")),
    ("status post", ("s/p", "after")),
    ("compared to", ("compared with", "relative to")),
    ("prior", ("previous", "earlier")),
    ("evidence of", ("signs of", "findings of")),
    ("mild", ("slight", "minimal")),
    ("visualized", ("imaged", "seen")),
    ("osseous structures", ("bony structures", "bones")),
    ("intact", ("unremarkable",)),
    ("normal", ("unremarkable",)),
    ("identified", ("seen", "noted")),
    ("demonstrated", ("shown", "seen")),
    ("hyperinflated", ("hyperexpanded", "overinflated")),
    ("emphysema", ("emphysematous changes", "COPD changes")),
    ("nodule", ("nodular opacity", "nodular density")),
    ("chest x-ray", ("CXR", "chest radiograph")),
    ("radiograph", ("x-ray", "film")),
    ("increased", ("worsened", "greater")),
    ("decreased", ("improved", "lessened")),
    ("shortness of breath", ("SOB", "dyspnea")),
    ("costophrenic angles", ("CP angles", "costophrenic sulci")),
    ("endotracheal tube", ("ETT", "ET tube")),
    ("nasogastric tube", ("NGT", "NG tube")),
    ("focal", ("localized",)),
    ("lungs", ("lung fields",)),
    ("infiltrate", ("infiltrates",)),
    ("are", ("appear",)),
    ("is", ("appears",)),
    ("with", ("w/",)),
    ("without", ("w/o",)),
)
HEADERS = (
    "EXAM: {exam}\nDATE OF SERVICE: {date}\nACCESSION: {acc}\nREFERRING: Dr. {ref}\n\n",
    "{exam} ({date})\nOrdering physician: {ref}, MD\nAcc# {acc}\n",
    "RADIOLOGY REPORT\nStudy date: {date}   Accession no. {acc}\nClinician: {ref}\n",
    "Procedure: {exam}\nPerformed {date} at {time}.\n",
)
SIGNOFFS = (
    "\n\nDictated by: {rad}, M.D.\nElectronically signed by {rad}, M.D. on {date} {time}.",
    "\n-- {rad}, MD, Radiology. Signed {date}.",
    "\n\nI have personally reviewed the images and agree with the report above.\n{rad}, MD  {date} {time}",
    "\nThis report was dictated using voice recognition software; minor errors may be present.\nRead by {rad}",
)
_FIRST = ("Maria", "James", "Aisha", "Wei", "Olga", "Tomás", "Priya", "Kofi", "Ingrid", "Hiroshi", "Leila", "Sean")
_LAST = ("Okafor", "Lindqvist", "Haddad", "Moreau", "Castillo", "Nakamura", "Brennan", "Petrov", "Adeyemi", "Kowalczyk")
_KEYS = "qwertyuiop asdfghjkl zxcvbnm"


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def synonyms(text: str, rng: random.Random, rate: float = 0.7) -> str:
    """Swap lexicon phrases (longest first, each occurrence with probability `rate`); at least one when any fits."""
    spans: list[tuple[int, int, str]] = []
    taken = [False] * (len(text) + 1)
    for phrase, repl in sorted(SYNONYMS, key=lambda p: -len(p[0])):
        for m in re.finditer(rf"\b{re.escape(phrase)}\b", text, flags=re.IGNORECASE):
            if any(taken[m.start() : m.end()]):
                continue
            spans.append((m.start(), m.end(), rng.choice(repl)))
            for i in range(m.start(), m.end()):
                taken[i] = True
    if not spans:
        return text
    chosen = [s for s in spans if rng.random() < rate] or [rng.choice(spans)]
    out = text
    for start, end, new in sorted(chosen, reverse=True):
        out = out[:start] + new + out[end:]
    return out


def sentence_drop(text: str, rng: random.Random) -> str:
    parts = _sentences(text)
    if len(parts) < 2:
        return text
    parts.pop(rng.randrange(len(parts)))
    return " ".join(parts)


def sentence_merge(text: str, rng: random.Random) -> str:
    parts = _sentences(text)
    if len(parts) < 2:
        return text
    i = rng.randrange(len(parts) - 1)
    first, second = parts[i].rstrip(".!? "), parts[i + 1]
    joined = f"{first}{rng.choice([', and ', '; ', ' and '])}{second[:1].lower()}{second[1:]}"
    return " ".join([*parts[:i], joined, *parts[i + 2 :]])


def reorder(text: str, rng: random.Random) -> str:
    parts = _sentences(text)
    if len(parts) < 2:
        return text
    shuffled = parts[:]
    while shuffled == parts:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


def header_signoff(text: str, rng: random.Random, exam: str = "CHEST 2 VIEWS") -> str:
    values = {
        "exam": exam.upper(),
        "date": f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(2015, 2024)}",
        "time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        "acc": f"{rng.randint(10**7, 10**8 - 1)}",
        "ref": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "rad": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
    }
    return rng.choice(HEADERS).format(**values) + text + rng.choice(SIGNOFFS).format(**values)


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    row = next((r for r in _KEYS.split() if word[i].lower() in r), None)
    if row is None:
        return word
    j = row.index(word[i].lower())
    near = row[j - 1] if j and (j == len(row) - 1 or rng.random() < 0.5) else row[min(j + 1, len(row) - 1)]
    return word[:i] + near + word[i + 1 :]


def typos(text: str, rng: random.Random, rate: float = 0.125) -> str:
    words = re.split(r"(\s+)", text)
    hits = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    chosen = [i for i in hits if rng.random() < rate] or hits[:1]
    for i in chosen:
        words[i] = _typo(words[i], rng)
    return "".join(words)


def case_wrap(text: str, rng: random.Random) -> str:
    cased = text.upper() if rng.random() < 0.6 else text.lower()
    width = rng.choice([40, 55, 64, 72])
    return "\n".join(textwrap.wrap(" ".join(cased.split()), width=width))


def apply_edit(kind: str, text: str, rng: random.Random, exam: str) -> str:
    if kind == "header_signoff":
        return header_signoff(text, rng, exam)
    fn = {
        "synonyms": synonyms,
        "sentence_drop": sentence_drop,
        "sentence_merge": sentence_merge,
        "reorder": reorder,
        "typos": typos,
        "case_wrap": case_wrap,
    }[kind]
    return fn(text, rng)


def edit(kind: str, text: str, rng: random.Random, exam: str = "CHEST 2 VIEWS") -> tuple[str, list[str]]:
    """The copy's text and the edits applied (combinations: 2 or 3 distinct edits in a fixed order, so case and
    line changes and the header come last, as a transcription would add them)."""
    if kind in EDITS:
        return apply_edit(kind, text, rng, exam), [kind]
    n = 2 if kind == "combined_2" else 3
    order = ("synonyms", "sentence_drop", "sentence_merge", "reorder", "typos", "header_signoff", "case_wrap")
    structural = ("sentence_drop", "sentence_merge", "reorder")
    pick: list[str] = []
    while len(pick) < n:
        e = rng.choice(EDITS)
        if e not in pick and not (e in structural and any(p in structural for p in pick)):
            pick.append(e)
    applied = sorted(pick, key=order.index)
    for e in applied:
        text = apply_edit(e, text, rng, exam)
    return text, applied


def iu_impression_cases(csv: Path) -> tuple[pl.DataFrame, pl.Series]:
    """The IU reports in the columns the impression recipe maps, plus one patient and accession per report;
    family = the first problem term."""
    raw = pl.read_csv(csv, infer_schema_length=0).filter(
        pl.col("findings").is_not_null() & pl.col("impression").is_not_null()
    )
    base = raw.select(
        pl.col("uid").alias("case_id"),
        ("P" + pl.col("uid").str.zfill(5)).alias("patient_id"),
        ("A" + pl.col("uid").str.zfill(7)).alias("accession"),
        (pl.lit(dt.date(2020, 1, 1)) + pl.duration(days=(pl.col("uid").cast(pl.Int64) * 7919) % 1400)).alias(
            "exam_date"
        ),
        pl.col("image").alias("exam_description"),
        pl.col("indication").alias("reason_for_exam"),
        pl.col("findings").alias("report_text"),
        "impression",
    )
    return base, raw["Problems"].str.split(";").list.first().fill_null("none")


def plant(
    base: pl.DataFrame, family: pl.Series, per_class: int = 50, negatives: int = 300, seed: int = 23
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cases, truth). `base` is in the case schema; `family` holds each base row's findings family (for the
    negatives). Copies get new case ids (`PP…`), patients and accessions; truth has one row per pair: case_a,
    case_b, kind (an edit class or `negative`), edits."""
    rng = random.Random(seed)
    rows = base.to_dicts()
    eligible = [i for i, r in enumerate(rows) if len(_sentences(r["report_text"] or "")) >= 2]
    sources = rng.sample(eligible, per_class * len(CLASSES))
    copies, truth = [], []
    for n, i in enumerate(sources):
        kind = CLASSES[n // per_class]
        src = rows[i]
        text, applied = edit(kind, src["report_text"], rng, src.get("exam_description") or "CHEST 2 VIEWS")
        new = dict(src)
        new["case_id"] = f"PP{n:05d}"
        new["patient_id"] = f"PPP{n:05d}"
        new["accession"] = f"PPA{n:07d}"
        new["report_text"] = text
        if "case_wrap" in applied and src.get("reason_for_exam"):
            new["reason_for_exam"] = src["reason_for_exam"].upper()
        copies.append(new)
        truth.append({"case_a": src["case_id"], "case_b": new["case_id"], "kind": kind, "edits": applied})
    used = {rows[i]["case_id"] for i in sources}
    frame = base.with_columns(family.alias("_family")).with_row_index("_i")
    from datakit.content import normalise_text

    frame = frame.with_columns(normalise_text(pl.col("report_text")).alias("_norm"))
    by_family = (
        frame.filter(~pl.col("case_id").is_in(list(used))).group_by("_family", maintain_order=True).agg("_i", "_norm")
    )
    fams = [(r["_i"], r["_norm"]) for r in by_family.iter_rows(named=True) if len(r["_i"]) >= 2]
    weights = [len(ids) for ids, _ in fams]
    seen: set[tuple[str, str]] = set()
    tries = 0
    while len(seen) < negatives and tries < negatives * 50:
        tries += 1
        ids, norms = rng.choices(fams, weights=weights)[0]
        x, y = rng.sample(range(len(ids)), 2)
        a, b = rows[ids[x]], rows[ids[y]]
        if norms[x] == norms[y] or a["patient_id"] == b["patient_id"]:
            continue
        pair = tuple(sorted((a["case_id"], b["case_id"])))
        if pair in seen:
            continue
        seen.add(pair)
        truth.append({"case_a": pair[0], "case_b": pair[1], "kind": "negative", "edits": []})
    cases = pl.concat([base, pl.DataFrame(copies, schema=base.schema)])
    return cases, pl.DataFrame(
        truth, schema={"case_a": pl.String, "case_b": pl.String, "kind": pl.String, "edits": pl.List(pl.String)}
    )


def score_run(run_dir: Path, truth: pl.DataFrame) -> pl.DataFrame:
    """Per class: pairs, look_alike, grouped, straddling, twin_as_shot, linked; and the same three measures over
    the pairs that are not look-alikes (`*_specific`). A pair is a look-alike when the leakage stage marked either
    record `look_alike`: its text is a template or has words neighbours written for many patients, so it is as
    close to them as to its twin and no split can keep it apart from all of them."""
    columns = ["case_id", "leakage_group", "split"]
    part = run_dir / "stages" / "leakage"
    has_flag = "look_alike" in pl.read_parquet_schema(next(part.glob("part-*.parquet")))
    rows = pl.read_parquet(part / "part-*.parquet", columns=columns + (["look_alike"] if has_flag else []))
    if not has_flag:
        rows = rows.with_columns(pl.lit(False).alias("look_alike"))
    rows = rows.unique("case_id").with_columns(pl.col("split").is_in(["val", "test"]).alias("eval"))
    links = pl.read_parquet(part / LINKS)
    direct = (
        links.filter(pl.col("kind").is_in(CONTENT_LINKS))
        .select(
            pl.min_horizontal("case_a", "case_b").alias("case_a"), pl.max_horizontal("case_a", "case_b").alias("case_b")
        )
        .unique()
        .with_columns(pl.lit(True).alias("linked"))
    )
    shots = pl.DataFrame(schema={"case_id": pl.String, "shot": pl.String})
    assemble = run_dir / "stages" / "assemble"
    if assemble.is_dir():
        shots = (
            pl.read_parquet(assemble / "part-*.parquet", columns=["case_id", "shot_case_ids"])
            .explode("shot_case_ids")
            .drop_nulls()
            .select("case_id", pl.col("shot_case_ids").alias("shot"))
            .unique()
        )
    shown = pl.concat([shots, shots.select(pl.col("shot").alias("case_id"), pl.col("case_id").alias("shot"))]).unique()
    pairs = (
        truth.join(rows.rename({"case_id": "case_a"}), on="case_a")
        .join(rows.rename({"case_id": "case_b"}), on="case_b", suffix="_b")
        .with_columns(
            pl.min_horizontal("case_a", "case_b").alias("lo"), pl.max_horizontal("case_a", "case_b").alias("hi")
        )
        .join(direct.rename({"case_a": "lo", "case_b": "hi"}), on=["lo", "hi"], how="left")
        .join(
            shown.with_columns(pl.lit(True).alias("shot_seen")).rename({"case_id": "case_a", "shot": "case_b"}),
            on=["case_a", "case_b"],
            how="left",
        )
        .with_columns(
            (pl.col("leakage_group") == pl.col("leakage_group_b")).alias("grouped"),
            (pl.col("eval") != pl.col("eval_b")).alias("straddling"),
            pl.col("shot_seen").fill_null(False).alias("twin_as_shot"),
            pl.col("linked").fill_null(False),
            (pl.col("look_alike") | pl.col("look_alike_b")).alias("look_alike"),
        )
    )
    measures = ("grouped", "straddling", "twin_as_shot")
    return (
        pairs.group_by("kind")
        .agg(
            pl.len().alias("pairs"),
            pl.col("look_alike").sum(),
            *[pl.col(m).sum() for m in measures],
            pl.col("linked").sum(),
            (~pl.col("look_alike")).sum().alias("specific"),
            *[(pl.col(m) & ~pl.col("look_alike")).sum().alias(f"{m}_specific") for m in measures],
        )
        .sort(pl.col("kind").replace_strict({k: i for i, k in enumerate((*CLASSES, "negative"))}, default=99))
    )
