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
from collections.abc import Callable
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


def _values(r: random.Random) -> dict[str, str]:
    m, d = r.randint(1, 12), r.randint(1, 28)
    a, b, c = r.randint(201, 989), r.randint(201, 989), r.randint(1000, 9999)
    return {
        "FIRST": r.choice(FIRST),
        "LAST": r.choice(LAST),
        "FIRST2": r.choice(FIRST),
        "LAST2": r.choice(LAST),
        "TOWN": r.choice(TOWNS),
        "FAC": r.choice(FACILITIES),
        "SITE": r.choice(SITE_ABBREVIATIONS),
        "MD": f"{m}/{d}",
        "MDY": f"{m}/{d}/{r.randint(15, 24)}",
        "NTH": f"{d}{'th' if 4 <= d <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}",
        "MONTH_DAY": f"{['January', 'March', 'June', 'July', 'September', 'November'][m % 6]} {d}",
        "TIME": f"{r.randint(1, 12)}:{r.randint(10, 59)}",
        "PHONE": r.choice(PHONES).format(a=a, b=b, c=c, d=r.randint(100, 9999)),
        "AGE": str(r.randint(90, 103)),
        "MRN": str(r.randint(10**6, 10**8)),
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


def _compose(parts: list[str | tuple[str, dict[str, str]]], r: random.Random, sep: str = "\n") -> Annotated:
    text, spans = "", []
    for i, part in enumerate(parts):
        if i:
            text += sep
        if isinstance(part, str):
            text += part
        else:
            filled, found = _fill(part[0], part[1], _values(r))
            spans += [(start + len(text), end + len(text), kind) for start, end, kind in found]
            text += filled
    return Annotated(text, spans)


def _insert(body: str, planted: list[tuple[str, dict[str, str]]], r: random.Random) -> Annotated:
    parts: list[str | tuple[str, dict[str, str]]] = [body]
    for p in planted:
        parts.insert(r.randint(0, len(parts)), p)
    return _compose(parts, r)


def nursing_notes(n: int, seed: int = 11) -> list[Annotated]:
    r = random.Random(seed)
    return [_compose(list(r.sample(NURSING, r.randint(3, 6))), r) for _ in range(n)]


def radiology_notes(texts: list[str], seed: int = 12) -> list[Annotated]:
    r = random.Random(seed)
    return [_insert(t, r.sample(RADIOLOGY, 3), r) for t in texts]


def case_notes(texts: list[str], seed: int = 13) -> list[Annotated]:
    r = random.Random(seed)
    return [_insert(t, r.sample(CASE, 2), r) for t in texts]


def dialogue_notes(dialogues: list[str], seed: int = 14) -> list[Annotated]:
    r = random.Random(seed)
    out = []
    for d in dialogues:
        turns: list[str | tuple[str, dict[str, str]]] = [t for t in d.split("\n") if t.strip()]
        for planted in r.sample(DIALOGUE_TURNS, 2):
            turns.insert(r.randint(1, len(turns)), planted)
        out.append(_compose([r.choice(DIALOGUE_OPEN), *turns], r))
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
