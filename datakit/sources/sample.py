"""The embedded `sample` source: deterministic, coder-reviewed radiology cases with planted PHI and duplicates.

Realistic enough to exercise every later stage: XR/CT/MR/US/mammography/nuclear exams with plausible CPT
codes and modifiers, valid ICD-10-CM codes (unspecified first-pass codes that review made specific), several
exams per patient, PHI in the text, and planted duplicates and bad rows whose ground truth is returned in
`SampleCases.truth` (never part of the case schema). Everything is synthetic.

All random draws are vectorised NumPy calls from one seeded generator; only the final text rendering visits
rows one at a time (string templating has no vectorised equivalent that keeps the templates readable).
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import polars as pl

from datakit.schema import CASE_SCHEMA

# Planted rows, as fractions of n. Kinds the leakage stage must find, and bad rows validation must catch.
PLANTED_RATES: dict[str, float] = {
    "exact_resubmission": 0.020,
    "redictation": 0.020,
    "addendum": 0.015,
    "bad:empty_report_text": 0.001,
    "bad:empty_icd10_codes": 0.001,
    "bad:conflicting_case_id": 0.001,
    "bad:identical_case_id": 0.001,
    "coder:label_conflict": 0.003,  # the same report coded differently by another coder
}
WRONG_SIDE_RATE = 0.015  # of rows with RT/LT: the modifier contradicts the side the report states
NON_BILLABLE_RATE = 0.001  # a non-billable (non-leaf) ICD-10-CM code added by the coder
SAME_ACCESSION_RATE = 0.005  # base rows given another row's accession (same accession, different text)
PENDING_RATE = 0.03  # rows not yet reviewed (filtered out by default)
FIRST_PASS_UNSPECIFIED_RATE = 0.35  # reviewed cases whose first-pass code was the unspecified sibling
NO_FIRST_PASS_RATE = 0.10  # cases whose source has no first-pass codes

FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Wei",
    "Aisha",
    "Dmitri",
    "Priya",
    "Kwame",
    "Mei",
    "Olusegun",
    "Ingrid",
    "Mateo",
    "Fatima",
    "Hiroshi",
    "Siobhan",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Nguyen",
    "Okafor",
    "Kowalski",
    "Chen",
    "Patel",
    "Haddad",
    "Novak",
    "O'Brien",
    "Yamamoto",
    "Schmidt",
]
FACILITIES = [
    "St. Mary Regional Medical Center",
    "Mercy General Hospital",
    "Lakeview Imaging Center",
    "Riverside Community Hospital",
    "Northwest Radiology Associates",
    "Good Samaritan Medical Center",
    "Valley Presbyterian Hospital",
    "Summit Orthopedic and Imaging",
]
STREETS = [
    "Main St",
    "Oak Avenue",
    "Maple Drive",
    "Cedar Lane",
    "Elm Street",
    "Washington Blvd",
    "Lakeshore Rd",
    "Pine Court",
    "Hillcrest Ave",
    "Sunset Boulevard",
]
CITIES = [
    ("Springfield", "IL", "62704"),
    ("Columbus", "OH", "43215"),
    ("Madison", "WI", "53703"),
    ("Portland", "OR", "97205"),
    ("Austin", "TX", "78701"),
    ("Raleigh", "NC", "27601"),
    ("Boise", "ID", "83702"),
    ("Albany", "NY", "12207"),
    ("Tucson", "AZ", "85701"),
    ("Omaha", "NE", "68102"),
]
LOBES = [
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "left upper lobe",
    "left lower lobe",
    "lingula",
]
LEVELS = ["L3-L4", "L4-L5", "L5-S1", "L4-5", "L5-S1"]
RIBS = ["fifth", "sixth", "seventh", "eighth", "ninth"]
DATE_FORMATS = ["%m/%d/%Y", "%Y-%m-%d", "%B %d, %Y", "%d-%b-%Y", "%m/%d/%y"]
ADDENDA = [
    "Comparison with the outside study confirms the finding is new.",
    "Correction: the finding is on the same side as stated in the indication.",
    "The referring clinician was notified of the result by telephone.",
    "Additional delayed images were reviewed and do not change the impression.",
]
EDITS = [
    ("is within normal limits", "is normal"),
    ("No ", "No evidence of "),
    ("mild", "minimal"),
    ("There is", "There is again"),
    ("measuring", "which measures"),
    (". ", ".  "),
    ("Acute", "Acute appearing"),
]


@dataclass(frozen=True)
class SampleCases:
    cases: pl.DataFrame
    truth: pl.DataFrame  # case_id, planted (kind or "none"), source_case_id


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, Any]:
    text = resources.files("datakit.sources").joinpath("data/catalogue.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def catalogue_icd10_codes() -> set[str]:
    """Every ICD-10-CM code the generator can emit (final or first-pass)."""
    codes: set[str] = set()
    for dx in catalogue()["dx"].values():
        for side_codes in dx["codes"].values():
            codes.update(side_codes)
        if "unspecified" in dx:
            codes.add(dx["unspecified"])
    return codes


def _dx_codes(dx: dict[str, Any], side: str) -> list[str]:
    codes = dx["codes"]
    if side in codes:
        return list(codes[side])
    if "none" in codes:
        return list(codes["none"])
    if side == "bilateral":
        return [*codes["right"], *codes["left"]]
    return list(codes["right" if side != "left" else "left"])


def _fmt_date(d: dt.date, style: int) -> str:
    return d.strftime(DATE_FORMATS[style])


class _Draws:
    """All per-row random draws, made up front from one generator so rendering is deterministic."""

    def __init__(self, rng: np.random.Generator, m: int, n_patients: int) -> None:
        self.u = rng.random((m, 24))
        self.i = rng.integers(0, 1 << 30, size=(m, 12))
        self.patient = rng.integers(0, n_patients, size=m)
        self.day = rng.integers(0, 1460, size=m)
        self.minute = rng.integers(7 * 60, 22 * 60, size=m)


def _render(
    k: int,
    d: _Draws,
    exam: dict[str, Any],
    dx: dict[str, Any],
    inc: dict[str, Any] | None,
    side: str,
    exam_date: dt.date,
    pat: dict[str, Any],
    accession: str,
) -> str:
    u, i = d.u[k], d.i[k]
    side_word = {"right": "right", "left": "left", "bilateral": "bilateral"}.get(side, "right")
    lobe = LOBES[i[0] % len(LOBES)]
    vals = {
        "side": side_word,
        "Side": side_word.capitalize(),
        "lobe": lobe,
        "Lobe": lobe.capitalize(),
        "mm": f"{3 + i[1] % 22} mm",
        "cm": f"{1 + i[2] % 6}.{i[3] % 10} x {1 + i[4] % 4}.{i[5] % 10} cm",
        "level": LEVELS[i[6] % len(LEVELS)],
        "rib": RIBS[i[7] % len(RIBS)],
        "age": str(pat["age"]),
    }

    def pick(options: list[str], col: int) -> str:
        return options[int(u[col] * len(options))].format_map(vals)

    minute = int(d.minute[k])
    time = f"{minute // 60:02d}:{minute % 60:02d}"
    ds = int(u[0] * len(DATE_FORMATS))
    radiologist = f"{FIRST[i[8] % len(FIRST)]} {LAST[i[9] % len(LAST)]}"
    referrer = f"{FIRST[i[10] % len(FIRST)]} {LAST[i[11] % len(LAST)]}"
    facility = FACILITIES[pat["facility"]]
    dob = _fmt_date(pat["dob"], ds)
    lines: list[str] = []
    header = int(u[1] * 3)
    if header == 0:
        lines += [
            facility,
            f"{pat['street']}, {pat['city']}",
            f"PATIENT: {pat['last'].upper()}, {pat['first'].upper()}    MRN: {pat['mrn']}    DOB: {dob}",
            f"ACCESSION: {accession}    DATE OF SERVICE: {_fmt_date(exam_date, ds)} {time}",
            f"EXAM: {exam['description']}",
        ]
    elif header == 1:
        lines += [
            f"Patient Name: {pat['first']} {pat['last']} | Medical Record #: {pat['mrn']} | Acc#: {accession}",
            f"Exam: {exam['description']}   Exam date: {_fmt_date(exam_date, ds)}",
        ]
    else:
        lines += [exam["description"]]
    indication = pick(dx["indication"], 2)
    if u[3] < 0.3:
        indication = f"{pat['age']}-year-old {pat['sex']}. {indication}"
    if u[4] < 0.05:
        indication += f" Patient callback number {pat['phone']}."
    lines.append(f"CLINICAL HISTORY: {indication}")
    if u[5] < 0.5:
        prior = exam_date - dt.timedelta(days=30 + int(u[6] * 700))
        lines.append(f"COMPARISON: {exam['modality']} dated {_fmt_date(prior, int(u[7] * len(DATE_FORMATS)))}.")
    else:
        lines.append("COMPARISON: None.")
    lines.append(f"TECHNIQUE: {pick(exam['technique'], 8)}")
    findings = pick(dx["findings"], 9)
    impression = pick(dx["impression"], 10)
    if inc is not None:
        findings += " " + pick(inc["findings"], 11)
        impression += "\n2. " + pick(inc["impression"], 12)
    lines += ["FINDINGS:", findings, "IMPRESSION:", f"1. {impression}"]
    if u[13] < 0.15:
        lines.append(
            f"Findings were discussed with Dr. {referrer} by telephone at {time} on "
            f"{_fmt_date(exam_date, int(u[14] * len(DATE_FORMATS)))}."
        )
    elif u[13] < 0.20:
        lines.append(f"Critical result communicated to {referrer}, NP, at {pat['phone']}.")
    sig = int(u[15] * 4)
    signed = _fmt_date(exam_date, ds)
    lines.append(
        [
            f"Electronically signed by: {radiologist}, MD on {signed} {time}",
            f"Dictated by: Dr. {radiologist.split()[1]}  Transcribed: {signed}",
            f"Read by {radiologist}, M.D.",
            f"Signed by {radiologist}, MD. {facility}, {pat['city']}.",
        ][sig]
    )
    if u[16] < 0.02:
        lines.append(f"Copy to {referrer.split()[0].lower()}.{referrer.split()[1].lower()}@example-clinic.org")
    return "\n".join(lines)


def _patients(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    first = rng.integers(0, len(FIRST), n)
    last = rng.integers(0, len(LAST), n)
    sex = rng.random(n) < 0.5
    age = rng.integers(18, 97, n)
    mrn = rng.integers(10_000_000, 99_999_999, n)
    phone = rng.integers(200_000_0000, 999_999_9999, n)
    num = rng.integers(10, 9999, n)
    street = rng.integers(0, len(STREETS), n)
    city = rng.integers(0, len(CITIES), n)
    facility = rng.integers(0, len(FACILITIES), n)
    doy = rng.integers(0, 365, n)
    out = []
    for p in range(n):
        c = CITIES[city[p]]
        ph = f"{phone[p]:010d}"
        out.append(
            {
                "first": FIRST[first[p]],
                "last": LAST[last[p]],
                "sex": "female" if sex[p] else "male",
                "age": int(age[p]),
                "mrn": f"{mrn[p]:08d}",
                "phone": f"({ph[:3]}) {ph[3:6]}-{ph[6:]}",
                "street": f"{num[p]} {STREETS[street[p]]}",
                "city": f"{c[0]}, {c[1]} {c[2]}",
                "facility": int(facility[p]),
                "dob": dt.date(2024 - int(age[p]), 1, 1) + dt.timedelta(days=int(doy[p])),
            }
        )
    return out


def _planted_counts(n: int) -> dict[str, int]:
    counts = {kind: round(n * rate) for kind, rate in PLANTED_RATES.items()}
    while sum(counts.values()) >= n:  # tiny n: keep at least one base row
        biggest = max(counts, key=lambda k: counts[k])
        counts[biggest] -= 1
    return counts


def generate_cases(n: int = 5000, seed: int = 17) -> SampleCases:
    """Generate `n` cases (base cases plus planted rows), deterministically from `seed`."""
    cat = catalogue()
    exams, dxs = cat["exam"], cat["dx"]
    rng = np.random.default_rng(seed)
    planted = _planted_counts(n)
    m = n - sum(planted.values())
    n_patients = max(1, m // 3)
    pats = _patients(rng, n_patients)
    d = _Draws(rng, m, n_patients)

    weights = np.array([e["weight"] for e in exams], dtype=float)
    exam_idx = rng.choice(len(exams), size=m, p=weights / weights.sum())
    u = d.u
    start = dt.date(2021, 1, 1)
    rows: dict[str, list[Any]] = {c: [] for c in CASE_SCHEMA}
    for k in range(m):
        exam = exams[exam_idx[k]]
        dx = dxs[exam["diagnoses"][int(u[k, 17] * len(exam["diagnoses"]))]]
        lateral = exam.get("side") == "unilateral"
        if lateral and u[k, 18] < exam.get("bilateral_rate", 0.0) and "bilateral" in dx["codes"]:
            side = "bilateral"
        else:
            side = "right" if u[k, 19] < 0.5 else "left"
        incidental = exam.get("incidental", [])
        inc = dxs[incidental[int(u[k, 20] * len(incidental))]] if incidental and u[k, 21] < 0.2 else None
        pat = pats[d.patient[k]]
        exam_date = start + dt.timedelta(days=int(d.day[k]))
        accession = f"A{exam_date.year % 100:02d}{k:07d}"
        mods: list[str] = []
        if u[k, 22] < 0.75:
            mods.append("26")
        elif u[k, 22] < 0.80:
            mods.append("TC")
        if lateral:
            mods.append({"right": "RT", "left": "LT", "bilateral": "50"}[side])
        mods += exam.get("modifiers", [])
        rare = d.i[k, 0] % 200
        if rare < 2:
            mods.append("76")
        elif rare < 3:
            mods.append("77")
        elif rare < 5 and exam["modality"] == "XR":
            mods.append("52")
        final = _dx_codes(dx, side)
        if inc is not None:
            final += [c for c in _dx_codes(inc, side) if c not in final]
        initial: list[str] | None = list(final)
        if "unspecified" in dx and u[k, 23] < FIRST_PASS_UNSPECIFIED_RATE:
            n_primary = len(_dx_codes(dx, side))
            initial = [dx["unspecified"], *final[n_primary:]]
        elif u[k, 23] > 1 - NO_FIRST_PASS_RATE:
            initial = None
        minute = int(d.minute[k])
        rows["case_id"].append(f"RC{k + 1:08d}")
        rows["patient_id"].append(pat["mrn"])
        rows["accession"].append(accession)
        rows["exam_date"].append(exam_date)
        rows["exam_description"].append(exam["description"])
        rows["reason_for_exam"].append(None)  # filled from the text's indication below
        rows["report_text"].append(_render(k, d, exam, dx, inc, side, exam_date, pat, accession))
        rows["impression"].append(None)
        rows["cpt_codes"].append(list(exam["cpt"]))
        rows["modifiers"].append(mods)
        rows["icd10_codes"].append(final)
        rows["initial_icd10_codes"].append(initial)
        rows["review_status"].append("reviewed")
        rows["updated_at"].append(
            dt.datetime.combine(exam_date, dt.time(minute // 60, minute % 60))
            + dt.timedelta(days=1 + int(d.i[k, 1] % 9))
        )
    base = pl.DataFrame(rows, schema=CASE_SCHEMA)
    # The structured indication is the report's CLINICAL HISTORY line, as an order system would hold it.
    base = base.with_columns(
        pl.col("report_text").str.extract(r"CLINICAL HISTORY: ([^\n]*)", 1).alias("reason_for_exam")
    )
    return _plant(base, planted, rng, seed)


def _plant(base: pl.DataFrame, planted: dict[str, int], rng: np.random.Generator, seed: int) -> SampleCases:
    m = base.height
    truth_rows: list[tuple[str, str, str | None]] = []
    extra: list[pl.DataFrame] = []
    next_id = m + 1

    def take(count: int) -> pl.DataFrame:
        return base[rng.integers(0, m, size=count).tolist()]

    def new_ids(count: int) -> list[str]:
        nonlocal next_id
        ids = [f"RC{j:08d}" for j in range(next_id, next_id + count)]
        next_id += count
        return ids

    # Same accession, different text: a base row takes another base row's accession.
    n_acc = round(m * SAME_ACCESSION_RATE) if m > 1 else 0
    pairs = rng.choice(m, size=(n_acc, 2), replace=False) if 0 < 2 * n_acc <= m else np.zeros((0, 2), int)
    acc = base["accession"].to_numpy().copy()
    acc[pairs[:, 0]] = acc[pairs[:, 1]]
    base = base.with_columns(pl.Series("accession", acc, dtype=pl.String))
    base_ids = base["case_id"].to_numpy()
    truth_rows += [(base_ids[a], "same_accession_other_text", base_ids[b]) for a, b in pairs]

    # Coder errors on base rows: the side modifier flipped, or a non-billable code added.
    sided = pl.col("modifiers").list.contains("RT") | pl.col("modifiers").list.contains("LT")
    u = rng.random(m)
    flip = base.select(sided).to_series().to_numpy() & (u < WRONG_SIDE_RATE)
    non_billable = ~flip & (u > 1 - NON_BILLABLE_RATE)
    base = base.with_columns(
        pl.when(pl.Series(flip))
        .then(pl.col("modifiers").list.eval(pl.element().replace({"RT": "LT", "LT": "RT"})))
        .otherwise(pl.col("modifiers"))
        .alias("modifiers"),
        pl.when(pl.Series(non_billable))
        .then(pl.col("icd10_codes").list.concat(pl.lit(["M54.5"])))
        .otherwise(pl.col("icd10_codes"))
        .alias("icd10_codes"),
    )
    truth_rows += [(base_ids[j], "coder:wrong_side_modifier", None) for j in np.flatnonzero(flip)]
    truth_rows += [(base_ids[j], "coder:non_billable_code", None) for j in np.flatnonzero(non_billable)]

    # Not yet reviewed: filtered out by default; half have no codes yet.
    pending = rng.random(m) < PENDING_RATE
    uncoded = pending & (rng.random(m) < 0.5)
    base = base.with_columns(
        pl.when(pl.Series(pending)).then(pl.lit("pending")).otherwise(pl.col("review_status")).alias("review_status"),
        pl.when(pl.Series(uncoded))
        .then(pl.lit([], dtype=pl.List(pl.String)))
        .otherwise(pl.col("icd10_codes"))
        .alias("icd10_codes"),
    )
    truth_rows += [(base_ids[j], "pending_review", None) for j in np.flatnonzero(pending)]

    later = pl.col("updated_at") + pl.duration(days=3)
    for kind, count in planted.items():
        if count == 0:
            continue
        src = take(count)
        src_ids = src["case_id"].to_list()
        if kind == "exact_resubmission":
            rows = src.with_columns(later)
        elif kind == "redictation":
            first = rng.integers(0, len(EDITS), size=count)
            edits = np.stack([first, (first + rng.integers(1, len(EDITS), size=count)) % len(EDITS)], axis=1)
            texts = [_edit(t, edits[j]) for j, t in enumerate(src["report_text"].to_list())]
            rows = src.with_columns(pl.Series("report_text", texts), later)
        elif kind == "addendum":
            which = rng.integers(0, len(ADDENDA), size=count)
            texts = [f"{t}\n\nADDENDUM: {ADDENDA[w]}" for t, w in zip(src["report_text"], which, strict=True)]
            rows = src.with_columns(pl.Series("report_text", texts), later)
        elif kind == "bad:empty_report_text":
            rows = src.with_columns(pl.lit("").alias("report_text"))
        elif kind == "bad:empty_icd10_codes":
            rows = src.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("icd10_codes"))
        elif kind == "coder:label_conflict":
            rows = src.with_columns(pl.col("icd10_codes").list.concat(pl.lit(["R69"])), later)
        elif kind == "bad:conflicting_case_id":
            rows = src.with_columns(pl.col("icd10_codes").list.concat(pl.lit(["R05.9"])), later)
        else:  # bad:identical_case_id
            rows = src
        keep_id = kind in ("bad:conflicting_case_id", "bad:identical_case_id")
        ids = src_ids if keep_id else new_ids(count)
        extra.append(rows.with_columns(pl.Series("case_id", ids, dtype=pl.String)))
        truth_rows += [(cid, kind, s) for cid, s in zip(ids, src_ids, strict=True)]

    cases = pl.concat([base, *extra])
    order = np.random.default_rng(seed + 1).permutation(cases.height)
    cases = cases[order.tolist()]
    truth = pl.DataFrame(
        truth_rows,
        schema={"case_id": pl.String, "planted": pl.String, "source_case_id": pl.String},
        orient="row",
    )
    return SampleCases(cases=cases, truth=truth)


def _edit(text: str, picks: np.ndarray) -> str:
    """A re-dictation: two small edits plus a trailing sentence, so the text always changes."""
    for p in picks:
        old, new = EDITS[int(p)]
        text = text.replace(old, new, 1)
    return text.replace("IMPRESSION:", "IMPRESSION (re-dictated):", 1) + " Otherwise unremarkable."
