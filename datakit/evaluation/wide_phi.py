"""A wider annotated PHI set than `planted_phi`: four note styles, larger and harder name pools, every rendering.

Styles (each note keeps its PHI spans):
- **radiology**: real IU chest X-ray reports with PHI in the header, comparison line, results communicated to a
  clinician and the sign-off, including month/day dates without a year;
- **case**: real MedPix case histories and findings with a referral line and an outside-hospital transfer;
- **nursing**: progress and nursing notes in shorthand (`pt`, `s/p`, `c/o`, `;`-joined lines), written here, with
  lower-case titles (`dr healey`), relatives (`husband joe`), site abbreviations (`transfer from gh`), `M/D`
  dates, phone numbers in several shapes;
- **dialogue**: real MTS-Dialog doctor-patient conversations with names said aloud (`Hi, Martha.`), relatives,
  towns and visit dates planted in the turns.

Names mix census names, names the census lists do not know (Okafor, Oyelaran) and surnames that are ordinary
English words (White, Young, Hill); towns and facilities are Indiana's and other US states'. `RENDERINGS` of
`planted_phi` apply: as written, ALL CAPS, all lower case.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from datakit.evaluation.planted_phi import Annotated

FIRST = (
    "Martha Joe Linda Priya Chidi Ngozi Wei Olga Dmitri Fatima Omar Juan Lucia Siobhan Declan Hiroshi Yuki Kwame "
    "Sven Ingrid Rajesh Anjali Tomas Ewa Bogdan Marisol Deshawn Latoya Connor Brianna Mateo Camila Elijah Zoe Arjun "
    "Mei Harold Beverly Gus Imelda"
).split()
LAST = (
    "Healey Calvert Kernan Okafor Nguyen Kowalczyk Abernathy Delacroix Fitzgerald Oyelaran Park Tanaka Schultz Mbeki "
    "Haugen Rosenberg Alvarez Pham McAllister Vasquez Demir Yilmaz Novak Horvath Lindgren Ferreira Castellanos "
    "Adeyemi Bianchi Rossi Kaur Chaudhry Khan Begum Sato Washington Brooks White Young Hill Green King Wood Stone "
    "Baptiste Oduya Varga Quintero Whitfield"
).split()
TOWNS = (
    "Kokomo|Noblesville|Greenwood|Plainfield|Zionsville|Brownsburg|Terre Haute|Fort Wayne|South Bend|Elkhart|"
    "Valparaiso|Shelbyville|Martinsville|Seymour|New Albany|Jeffersonville|Logansport|Vincennes|Jasper|Crawfordsville|"
    "Dayton|Peoria|Louisville|Champaign|Rockford|Toledo"
).split("|")
FACILITIES = (
    "Calvert Hospital|Kernan Hospital|St. Elizabeth Medical Center|Witham Health|Hendricks Regional Hospital|"
    "Union Hospital|Franciscan Health Clinic|Riley Children's Hospital|Schneck Medical Center|Major Hospital"
).split("|")
SITE_ABBREVIATIONS = ["GH", "CNH", "UMC", "SSH", "WMH", "HRH"]
PHONES = ["({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "{a} {b} {c}", "{a}-{b}-{c} x{d}"]


@dataclass(frozen=True)
class Pools:
    """The values PHI placeholders draw from."""

    first: list[str]
    last: list[str]
    towns: list[str]
    facilities: list[str]
    sites: list[str]


TUNING = Pools(FIRST, LAST, TOWNS, FACILITIES, SITE_ABBREVIATIONS)


def _values(r: random.Random, pools: Pools = TUNING) -> dict[str, str]:
    m, d = r.randint(1, 12), r.randint(1, 28)
    a, b, c = r.randint(201, 989), r.randint(201, 989), r.randint(1000, 9999)
    return {
        "FIRST": r.choice(pools.first),
        "LAST": r.choice(pools.last),
        "FIRST2": r.choice(pools.first),
        "LAST2": r.choice(pools.last),
        "TOWN": r.choice(pools.towns),
        "FAC": r.choice(pools.facilities),
        "SITE": r.choice(pools.sites),
        "MD": f"{m}/{d}",
        "MDY": f"{m}/{d}/{r.randint(15, 24)}",
        "NTH": f"{d}{'th' if 4 <= d <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}",
        "MONTH_DAY": f"{['January', 'March', 'June', 'July', 'September', 'November'][m % 6]} {d}",
        "TIME": f"{r.randint(1, 12)}:{r.randint(10, 59)}",
        "PHONE": r.choice(PHONES).format(a=a, b=b, c=c, d=r.randint(100, 9999)),
        "AGE": str(r.randint(90, 103)),
        "MRN": str(r.randint(10**6, 10**8)),
        "MRN2": f"{r.choice('ABCHV')}{r.randint(10**5, 10**9)}",
    }


# (template, {placeholder: PHI type}); a placeholder may combine two values: {FIRST} {LAST} -> one NAME span each
NURSING = [
    ("{MD} 0800 pt seen by dr {LAST} , c/o sob ; o2 2l nc .", {"MD": "DATE", "LAST": "NAME"}),
    ("s/p fall at home on {MD} ; transfer from {SITE} for eval .", {"MD": "DATE", "SITE": "FACILITY"}),
    ("husband {FIRST} called , updated on plan of care .", {"FIRST": "RELATIVE"}),
    ("daughter {FIRST} at bedside ; spoke with dr {LAST} re: dc plan .", {"FIRST": "RELATIVE", "LAST": "NAME"}),
    ("pt to {TOWN} rehab on {MD} per case mgmt .", {"TOWN": "LOCATION", "MD": "DATE"}),
    ("f/u with {FIRST} {LAST} , np in 2 wks at {FAC} .", {"FIRST": "NAME", "LAST": "NAME", "FAC": "FACILITY"}),
    ("per dr {LAST} , hold heparin tonight .", {"LAST": "NAME"}),
    ("taken to {FAC} for ct head ; returned {MD} at {TIME} .", {"FAC": "FACILITY", "MD": "DATE", "TIME": "DATE"}),
    ("cc: dr {FIRST} {LAST}", {"FIRST": "NAME", "LAST": "NAME"}),
    ("pt is a {AGE} yo f admitted {MDY} w/ cap .", {"AGE": "AGE", "MDY": "DATE"}),
    ("call {PHONE} with results ; wife {FIRST} prefers cell .", {"PHONE": "PHONE", "FIRST": "RELATIVE"}),
    (
        "seen on the {NTH} by {FIRST} {LAST} rn ; lives in {TOWN} .",
        {"NTH": "DATE", "FIRST": "NAME", "LAST": "NAME", "TOWN": "LOCATION"},
    ),
    (
        "neighbor {FIRST} {LAST} found pt on floor ; ems to {SITE} er .",
        {"FIRST": "RELATIVE", "LAST": "RELATIVE", "SITE": "FACILITY"},
    ),
    (
        "mrn {MRN} ; attending {FIRST} {LAST} notified {MONTH_DAY} .",
        {"MRN": "ID", "FIRST": "NAME", "LAST": "NAME", "MONTH_DAY": "DATE"},
    ),
]
RADIOLOGY = [
    ("COMPARISON: {MD}.", {"MD": "DATE"}),
    ("Results communicated to Dr. {LAST} by phone at {TIME} on {MD}.", {"LAST": "NAME", "TIME": "DATE", "MD": "DATE"}),
    ("Transferred from {FAC} in {TOWN}.", {"FAC": "FACILITY", "TOWN": "LOCATION"}),
    ("Dictated by: {FIRST} {LAST}, MD", {"FIRST": "NAME", "LAST": "NAME"}),
    ("Outside films from {SITE} dated {MDY} reviewed.", {"SITE": "FACILITY", "MDY": "DATE"}),
    ("Call back number {PHONE}.", {"PHONE": "PHONE"}),
]
CASE = [
    ("Referred by Dr. {FIRST} {LAST} of {FAC}.", {"FIRST": "NAME", "LAST": "NAME", "FAC": "FACILITY"}),
    (
        "Seen at {SITE} on {MD} and transferred to {FAC} in {TOWN}.",
        {"SITE": "FACILITY", "MD": "DATE", "FAC": "FACILITY", "TOWN": "LOCATION"},
    ),
    ("The patient's son {FIRST} gave the history.", {"FIRST": "RELATIVE"}),
]
DIALOGUE_OPEN = [
    ("Doctor: Hi, {FIRST}. How are you doing today?", {"FIRST": "NAME"}),
    ("Doctor: Good morning {FIRST}, I'm Dr. {LAST}.", {"FIRST": "NAME", "LAST": "NAME"}),
]
DIALOGUE_TURNS = [
    ("Patient: My husband {FIRST} drove me in from {TOWN} this morning.", {"FIRST": "RELATIVE", "TOWN": "LOCATION"}),
    ("Patient: I saw Dr. {LAST} at {FAC} on {MD}.", {"LAST": "NAME", "FAC": "FACILITY", "MD": "DATE"}),
    ("Doctor: Thanks, {FIRST}. We'll call you at {PHONE}.", {"FIRST": "NAME", "PHONE": "PHONE"}),
    ("Patient: My daughter {FIRST} is a nurse at {SITE}.", {"FIRST": "RELATIVE", "SITE": "FACILITY"}),
]


def _fill(template: str, kinds: dict[str, str], values: dict[str, str]) -> tuple[str, list[tuple[int, int, str]]]:
    out, spans = "", []
    for pos, piece in enumerate(template.replace("}", "{").split("{")):
        if pos % 2:  # odd pieces are placeholders
            value = values[piece]
            spans.append((len(out), len(out) + len(value), kinds[piece]))
            out += value
        else:
            out += piece
    return out, spans


def _compose(
    parts: list[str | tuple[str, dict[str, str]]], r: random.Random, sep: str = "\n", pools: Pools = TUNING
) -> Annotated:
    text, spans = "", []
    for i, part in enumerate(parts):
        if i:
            text += sep
        if isinstance(part, str):
            text += part
        else:
            filled, found = _fill(part[0], part[1], _values(r, pools))
            spans += [(start + len(text), end + len(text), kind) for start, end, kind in found]
            text += filled
    return Annotated(text, spans)


def _insert(body: str, planted: list[tuple[str, dict[str, str]]], r: random.Random, pools: Pools = TUNING) -> Annotated:
    parts: list[str | tuple[str, dict[str, str]]] = [body]
    for p in planted:
        parts.insert(r.randint(0, len(parts)), p)
    return _compose(parts, r, pools=pools)


Templates = list[tuple[str, dict[str, str]]]


def nursing_notes(n: int, seed: int = 11, templates: Templates = NURSING, pools: Pools = TUNING) -> list[Annotated]:
    r = random.Random(seed)
    return [_compose(list(r.sample(templates, r.randint(3, 6))), r, pools=pools) for _ in range(n)]


def radiology_notes(
    texts: list[str], seed: int = 12, templates: Templates = RADIOLOGY, pools: Pools = TUNING
) -> list[Annotated]:
    r = random.Random(seed)
    return [_insert(t, r.sample(templates, 3), r, pools) for t in texts]


def case_notes(texts: list[str], seed: int = 13, templates: Templates = CASE, pools: Pools = TUNING) -> list[Annotated]:
    r = random.Random(seed)
    return [_insert(t, r.sample(templates, 2), r, pools) for t in texts]


def dialogue_notes(
    dialogues: list[str],
    seed: int = 14,
    opening: Templates = DIALOGUE_OPEN,
    templates: Templates = DIALOGUE_TURNS,
    pools: Pools = TUNING,
) -> list[Annotated]:
    r = random.Random(seed)
    out = []
    for d in dialogues:
        turns: list[str | tuple[str, dict[str, str]]] = [t for t in d.split("\n") if t.strip()]
        for planted in r.sample(templates, 2):
            turns.insert(r.randint(1, len(turns)), planted)
        out.append(_compose([r.choice(opening), *turns], r, pools=pools))
    return out


def medpix_texts(path: Path, n: int) -> list[str]:
    cases = json.loads(path.read_text())
    texts = [f"History: {c['Case'].get('History', '')}\nFindings: {c['Case'].get('Findings', '')}" for c in cases]
    return [t for t in texts if len(t) > 60][:n]


def mts_dialogues(path: Path, n: int) -> list[str]:
    frame = pl.read_csv(path).filter(pl.col("dialogue").str.len_chars() > 200)
    return frame["dialogue"].head(n).to_list()


def wide_set(real_data: Path, per_style: int = 100) -> dict[str, list[Annotated]]:
    """style -> annotated notes; the real-text styles need `real_data` (../shared/real_data)."""
    from datakit.evaluation.planted_phi import iu_texts

    styles: dict[str, Callable[[], list[Annotated]]] = {
        "nursing": lambda: nursing_notes(per_style),
        "radiology": lambda: radiology_notes(
            iu_texts(str(real_data / "indiana_iu_cxr" / "indiana_reports.csv"), 2000)[-per_style:]
        ),
        "case": lambda: case_notes(medpix_texts(real_data / "medpix_2_0" / "Case_topic.json", per_style)),
        "dialogue": lambda: dialogue_notes(
            mts_dialogues(real_data / "mts_dialog" / "MTS-Dialog-TrainingSet.csv", per_style)
        ),
    }
    return {name: make() for name, make in styles.items()}


# A held-out set: other name pools, other phrasings, other texts (rows the tuning set does not use). It was written
# before the de-identifier was measured on it and is not tuned against: bench/deid.py reports it beside the wide set.
HOLDOUT_POOLS = Pools(
    first=(
        "Agnes Bartholomew Cedric Dolores Esperanza Florian Gwendolyn Horatio Ignatius Jolene Kofi Leopold Magdalena "
        "Nikolai Octavia Percival Quincy Rosalind Stanislaw Thaddeus Ursula Valentina Winifred Xiomara Yolanda "
        "Zbigniew Amara Bao Chiamaka Dagny Emeka Farida Gunnar Halima Ismael Gary Marion Dawn Faith Rusty"
    ).split(),
    last=(
        "Fox Little Rivers Banks Field Gardner Cook Fisher Baker Walker Woods Lane Sharp Frost Snow Bush Marsh Ward "
        "Hall Nash Okonkwo Szymanski Papadopoulos Nakamura Gallagher Ostrowski Achterberg Mbatha Quispe Thorvaldsen "
        "Balogun Kowalski Iwu Lindqvist Moreau Grünewald O'Donnell Da Silva"
    ).split(),
    towns=(
        "Bloomington|Muncie|Lafayette|Anderson|Carmel|Fishers|Merrillville|Hammond|Evansville|Richmond|Columbus|"
        "Madison|Marion|Warsaw|Goshen|Auburn|Angola|Frankfort|Lebanon|Mishawaka|Kendallville|Peru|Princeton"
    ).split("|"),
    facilities=(
        "IU Health Methodist Hospital|Eskenazi Health|Community Hospital East|Parkview Regional Medical Center|"
        "Deaconess Hospital|Good Samaritan Hospital|Memorial Hospital of South Bend|Reid Health|"
        "Ascension St. Vincent|Lutheran Hospital|Saint Joseph Regional Medical Center|Beacon Health Clinic"
    ).split("|"),
    sites=["MHS", "SVH", "CHE", "PRMC", "LH", "DHC"],
)
HOLDOUT_NURSING = [
    (
        "{MD} @ {TIME} - pt's son {FIRST} at bedside, updated by {FIRST2} {LAST2} rn",
        {"MD": "DATE", "TIME": "DATE", "FIRST": "RELATIVE", "FIRST2": "NAME", "LAST2": "NAME"},
    ),
    ("d/c'd to {FAC} on {MD} , report called to receiving rn", {"FAC": "FACILITY", "MD": "DATE"}),
    ("pcp: dr. {LAST} ({PHONE})", {"LAST": "NAME", "PHONE": "PHONE"}),
    ("discussed w/ dr {FIRST} {LAST} (cards) - ok to start asa", {"FIRST": "NAME", "LAST": "NAME"}),
    ("pt states she lives w/ her sister {FIRST} in {TOWN}", {"FIRST": "RELATIVE", "TOWN": "LOCATION"}),
    ("admitted {MONTH_DAY} via ed from {SITE}", {"MONTH_DAY": "DATE", "SITE": "FACILITY"}),
    ("dob {MDY} ; {AGE} y/o w/ hx chf", {"MDY": "DATE", "AGE": "AGE"}),
    ("wife {FIRST} {LAST} is hcpoa , cell {PHONE}", {"FIRST": "RELATIVE", "LAST": "RELATIVE", "PHONE": "PHONE"}),
    ("signed: {FIRST} {LAST}, pa-c {MD} {TIME}", {"FIRST": "NAME", "LAST": "NAME", "MD": "DATE", "TIME": "DATE"}),
    ("transported to {FAC} by ems at {TIME}", {"FAC": "FACILITY", "TIME": "DATE"}),
    ("resident dr {LAST} aware of bp 180/95 ; will recheck", {"LAST": "NAME"}),
    ("mrn: {MRN} / acct {MRN2}", {"MRN": "ID", "MRN2": "ID"}),
]
HOLDOUT_RADIOLOGY = [
    ("CLINICAL HISTORY: Outside study from {FAC} ({MDY}).", {"FAC": "FACILITY", "MDY": "DATE"}),
    (
        "These findings were discussed with {FIRST} {LAST}, NP, on {MONTH_DAY} at {TIME}.",
        {"FIRST": "NAME", "LAST": "NAME", "MONTH_DAY": "DATE", "TIME": "DATE"},
    ),
    ("Electronically signed by {FIRST} {LAST} M.D. on {MDY}", {"FIRST": "NAME", "LAST": "NAME", "MDY": "DATE"}),
    ("Comparison is made to prior exam from {SITE} dated {MD}.", {"SITE": "FACILITY", "MD": "DATE"}),
    ("Accession {MRN}. Ordering physician: Dr. {LAST}.", {"MRN": "ID", "LAST": "NAME"}),
]
HOLDOUT_CASE = [
    (
        "A {AGE}-year-old woman from {TOWN} was sent by her physician, Dr. {LAST}.",
        {"AGE": "AGE", "TOWN": "LOCATION", "LAST": "NAME"},
    ),
    ("She had been treated at {FAC} since {MONTH_DAY}.", {"FAC": "FACILITY", "MONTH_DAY": "DATE"}),
    ("Her daughter, {FIRST} {LAST}, accompanied her.", {"FIRST": "RELATIVE", "LAST": "RELATIVE"}),
]
HOLDOUT_OPEN = [
    ("Doctor: Hello {FIRST}, nice to see you again.", {"FIRST": "NAME"}),
    ("Doctor: Come on in, Mr. {LAST}. Have a seat.", {"LAST": "NAME"}),
]
HOLDOUT_TURNS = [
    ("Patient: My wife, {FIRST}, made me come in.", {"FIRST": "RELATIVE"}),
    ("Patient: I had my surgery at {FAC} on {MD}.", {"FAC": "FACILITY", "MD": "DATE"}),
    ("Guest_family: I'm her son, {FIRST} {LAST}.", {"FIRST": "RELATIVE", "LAST": "RELATIVE"}),
    ("Doctor: Okay {FIRST}, you can reach the nurse at {PHONE}.", {"FIRST": "NAME", "PHONE": "PHONE"}),
    ("Patient: We moved here from {TOWN} two years ago.", {"TOWN": "LOCATION"}),
]


def holdout_set(real_data: Path, per_style: int = 100) -> dict[str, list[Annotated]]:
    """The held-out set: `HOLDOUT_POOLS` and the `HOLDOUT_*` phrasings on texts the tuning set does not use (IU rows
    2,000-3,000, MedPix's last cases, MTS-Dialog's first test set)."""
    from datakit.evaluation.planted_phi import iu_texts

    pools = HOLDOUT_POOLS
    medpix = medpix_texts(real_data / "medpix_2_0" / "Case_topic.json", 10_000)
    mts = real_data / "mts_dialog" / "MTS-Dialog-TestSet-1-MEDIQA-Chat-2023.csv"
    styles: dict[str, Callable[[], list[Annotated]]] = {
        "nursing": lambda: nursing_notes(per_style, 21, HOLDOUT_NURSING, pools),
        "radiology": lambda: radiology_notes(
            iu_texts(str(real_data / "indiana_iu_cxr" / "indiana_reports.csv"), 3000)[-per_style:],
            22,
            HOLDOUT_RADIOLOGY,
            pools,
        ),
        "case": lambda: case_notes(medpix[-per_style:], 23, HOLDOUT_CASE, pools),
        "dialogue": lambda: dialogue_notes(mts_dialogues(mts, per_style), 24, HOLDOUT_OPEN, HOLDOUT_TURNS, pools),
    }
    return {name: make() for name, make in styles.items()}


def _title_or_pair(text: str, start: int, end: int, parts: list[str]) -> bool:
    before = text[max(0, start - 6) : start].lower()
    after = text[end : end + 30].lower()
    other = [p.lower() for p in parts if p.lower() != text[start:end].lower()]
    return bool(re.search(r"\b(?:mr|mrs|ms|dr|miss)\.?\s+$", before)) or any(
        after.lstrip(" ,").startswith(o) or before.rstrip(" ,").endswith(o) for o in other
    )


def aci_names(real_data: Path, field: str = "dialogue") -> list[Annotated]:
    """ACI-Bench encounters (every split) with the patient's and the doctor's names annotated where the
    encounter's metadata gives them and the text says them ("[doctor] hi , martha ."): real name mentions that
    no one here planted. A name part that is also a common English word ("White", "Hope") counts only after a
    title or beside the other part of the name. Only these names are annotated (other PHI the text may hold is
    not), so the set measures name recall, not precision."""
    from wordfreq import zipf_frequency

    out = []
    folder = real_data / "aci_bench"
    for path in sorted(folder.glob("*.csv")):
        if path.stem.endswith("_metadata"):
            continue
        frame = pl.read_csv(path).join(
            pl.read_csv(folder / f"{path.stem}_metadata.csv"), on=["dataset", "encounter_id"], how="left"
        )
        for row in frame.iter_rows(named=True):
            text = row[field]
            parts = [
                p
                for key in ("patient_firstname", "patient_familyname", "doctor_name")
                for p in str(row.get(key) or "").replace(".", " ").split()
                if len(p) > 1 and p.lower() not in {"dr", "mr", "mrs", "ms", "md"}
            ]
            spans = []
            for part in parts:
                for m in re.finditer(rf"(?i)\b{re.escape(part)}\b", text):
                    if zipf_frequency(part.lower(), "en") < 4.0 or _title_or_pair(text, m.start(), m.end(), parts):
                        spans.append((m.start(), m.end(), "NAME"))
            if spans:
                out.append(Annotated(text, sorted(set(spans))))
    return out
