"""Apply the recipe's operator to each detected span, and check what is left for high-risk PHI.

Operators: `surrogate` (keyed, consistent within a patient; dates shifted by the patient's offset in their own
format), `tag` (`[NAME]`, `[DATE]` …), `redact` (removed) and `keep` (left as written, counted: a policy that
keeps a kind, clock times say). The residual check runs on the output with every
inserted replacement blanked out, so a surrogate phone number is not mistaken for a real one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import regex

from datakit.deid import surrogates as sg
from datakit.deid.engine import Span
from datakit.deid.normalize import fold

TAGS = {
    "PERSON": "NAME",
    "DATE_TIME": "DATE",
    "DATE_OF_BIRTH": "DOB",
    "TIME": "TIME",
    "AGE_OVER_89": "AGE",
    "MEDICAL_RECORD_NUMBER": "MRN",
    "ACCESSION_NUMBER": "ACCESSION",
    "ACCOUNT_NUMBER": "ACCOUNT",
    "DEVICE_SERIAL": "SERIAL",
    "PHONE_NUMBER": "PHONE",
    "US_SSN": "SSN",
    "EMAIL_ADDRESS": "EMAIL",
    "URL": "URL",
    "IP_ADDRESS": "IP",
    "STREET_ADDRESS": "ADDRESS",
    "LOCATION": "LOCATION",
    "ORGANIZATION": "FACILITY",
}
ENTITIES = tuple(TAGS)

Surrogate = Callable[[str, sg.Keyed, int], str]


def _date(span: str, keyed: sg.Keyed, offset: int) -> str:
    return sg.shift_date(span, offset) or "[DATE]"


def _age(span: str, keyed: sg.Keyed, offset: int) -> str:
    return "90+"  # HIPAA Safe Harbor: ages over 89 are aggregated into one category


SURROGATES: dict[str, Surrogate] = {
    "PERSON": lambda s, k, o: sg.surrogate_name(s, k),
    "DATE_TIME": _date,
    "DATE_OF_BIRTH": _date,
    "TIME": lambda s, k, o: sg.surrogate_time(s, k),
    "AGE_OVER_89": _age,
    "MEDICAL_RECORD_NUMBER": lambda s, k, o: sg.same_shape(s, k, "mrn"),
    "ACCESSION_NUMBER": lambda s, k, o: sg.same_shape(s, k, "accession"),
    "ACCOUNT_NUMBER": lambda s, k, o: sg.same_shape(s, k, "account"),
    "DEVICE_SERIAL": lambda s, k, o: sg.same_shape(s, k, "serial"),
    "PHONE_NUMBER": lambda s, k, o: sg.surrogate_phone(s, k),
    "US_SSN": lambda s, k, o: "9" + sg.same_shape(s, k, "ssn")[1:],  # 9xx: never issued
    "EMAIL_ADDRESS": lambda s, k, o: sg.surrogate_email(s, k),
    "URL": lambda s, k, o: "https://example.org/",
    "IP_ADDRESS": lambda s, k, o: f"192.0.2.{k.pick('ip', s, 254) + 1}",  # TEST-NET-1
    "STREET_ADDRESS": lambda s, k, o: sg.surrogate_street(s, k),
    "LOCATION": lambda s, k, o: sg.surrogate_location(s, k),
    "ORGANIZATION": lambda s, k, o: sg.surrogate_facility(s, k),
}

RESIDUAL = {
    "US_SSN": regex.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)"),
    "PHONE_NUMBER": regex.compile(r"(?=[(2-9])(?<![\w\-.])\(?[2-9]\d{2}\)?[ \-.]\d{3}[ \-.]\d{4}(?![\w\-])"),
    "ID_NUMBER": regex.compile(
        r"\b(?i:mrn|mr#|medical record|accession|acc|account|acct)\b[^\n\d]{0,12}\d{5,}|(?<![\d.])\d{7,}(?![\d.])"
    ),
    "EMAIL_ADDRESS": regex.compile(r"\b[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+\b"),
    "FULL_DATE": regex.compile(
        r"(?<![\d/.])(?:0?[1-9]|1[0-2])[/\-](?:0?[1-9]|[12]\d|3[01])[/\-](?:(?:19|20)\d{2}|\d{2})(?![\d/])"
        r"|(?<![\d\-])(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?![\d\-])"
        r"|\b(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2},? (?:19|20)\d{2}\b"
        r"|\b\d{1,2}[ \-](?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*[ \-](?:19|20)\d{2}\b"
    ),
}


def replace_spans(
    text: str, spans: list[Span], keyed: sg.Keyed, offset: int, operators: dict[str, str], counts: Counter[str]
) -> tuple[str, list[tuple[int, int]]]:
    """The text with every span replaced; the (start, end) of each insertion in the output."""
    out: list[str] = []
    inserted: list[tuple[int, int]] = []
    pos = 0
    length = 0
    for s in spans:
        operator = operators.get(s.entity, "surrogate")
        if operator == "keep":  # the recipe keeps this kind as written: counted, not replaced, not exempt from checks
            counts[f"{s.entity}:keep"] += 1
            continue
        original = fold(text[s.start : s.end])  # "Zeb\u00adulon" is "Zebulon": the same surrogate, no hidden mark
        if operator == "redact":
            new = ""
        elif operator == "tag":
            new = f"[{TAGS.get(s.entity, s.entity)}]"
        elif s.entity in SURROGATES:
            new = SURROGATES[s.entity](original, keyed, offset)
        else:
            new = f"[{TAGS.get(s.entity, s.entity)}]"
        counts[f"{s.entity}:{operator}"] += 1
        out.append(text[pos : s.start])
        length += s.start - pos
        out.append(new)
        inserted.append((length, length + len(new)))
        length += len(new)
        pos = s.end
    out.append(text[pos:])
    return "".join(out), inserted


def residual_hits(text: str, inserted: list[tuple[int, int]]) -> list[str]:
    """High-risk PHI types still present outside the inserted replacements."""
    masked = list(text)
    for a, b in inserted:
        masked[a:b] = " " * (b - a)
    blank = fold("".join(masked))  # fullwidth digits and invisible characters do not hide a number (`normalize`)
    return [name for name, rx in RESIDUAL.items() if rx.search(blank)]
