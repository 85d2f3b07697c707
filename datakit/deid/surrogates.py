"""Replacements for PHI spans: keyed surrogates consistent within a patient, per-patient date shifting that
keeps each date's written format, and same-shape keyed identifiers.

Every choice is a keyed HMAC of (patient, entity type, normalised original), so the same real name in all of a
patient's records gets the same surrogate, a different key gives different surrogates, and nothing is random.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable

import polars as pl

from datakit.keys import SecretKey

FIRST_NAMES = (
    "Avery Blake Casey Dana Drew Emerson Finley Harper Hayden Jamie Jordan Kai Kendall Logan Marlow Morgan Parker "
    "Quinn Reese Riley Rowan Sage Skyler Tatum Teagan Alden Bellamy Corin Dallas Ellis Frankie Gale Hollis Indigo "
    "Jules Kerry Lane Merritt Noel Oakley Perry Remy Shiloh Tobin Umber Vale Winslow Yael Zion"
).split()
LAST_NAMES = (
    "Abernathy Ashdown Blackwood Brightwater Calloway Castellan Dunmore Eastwood Fairbanks Fenwick Galloway Greer "
    "Hartwell Holloway Ingram Jessup Kettering Lockhart Marchetti Merriweather Northcott Oakhurst Pemberton Quimby "
    "Ravensworth Rowntree Sandoval Stanhope Thackeray Underhill Vandermeer Wainwright Whitlock Yardley Zellweger "
    "Ashcombe Birchall Cranmore Dalrymple Ellwood Farrow Glendinning Hawthorne Ibbotson Kilbride Langstaff Montague "
    "Netherton Ormsby Prendergast"
).split()
CITIES = (
    "Alderbrook Brambleton Cedarford Dunmere Elmstead Foxhollow Glenwick Harrowgate Ivywood Larchmont Meadowvale "
    "Northbridge Oakvale Pinecrest Queensbury Ravenhill Silverlake Thornbury"
).split()
FACILITIES = (
    "Alder Regional Medical Center|Birchwood Community Hospital|Cedar Valley Imaging|Dunmore General Hospital|"
    "Elm Grove Clinic|Fairview Memorial Hospital|Greystone Radiology Associates|Harbor Point Medical Center"
).split("|")
STREETS = "Maple Birch Willow Chestnut Hawthorn Juniper Linden Magnolia Poplar Sycamore".split()
SUFFIXES = "Street Avenue Road Lane Drive Court Way Place".split()

MONTHS = ("January February March April May June July August September October November December").split()
_MON_ABBR = {m[:3].lower(): i + 1 for i, m in enumerate(MONTHS)} | {"sept": 9}


class Keyed:
    """Keyed choices for one patient: `pick(kind, original, n)` -> an index in [0, n)."""

    def __init__(self, key: bytes, patient: str) -> None:
        self._key = key
        self._patient = patient

    def digest(self, kind: str, original: str) -> bytes:
        msg = f"{kind}\x1f{self._patient}\x1f{original.strip().lower()}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def pick(self, kind: str, original: str, n: int) -> int:
        return int.from_bytes(self.digest(kind, original)[:8], "big") % n


def date_offsets(key: SecretKey, patients: pl.Series, max_days: int) -> pl.Series:
    """Each patient's date shift: a keyed, never-zero number of days in [-max_days, -1] (dates move back)."""
    digests = key.hmac_hex(patients, "date-shift", 16)  # the first 8 bytes of the keyed HMAC
    return pl.Series(patients.name, [-(1 + int(h, 16) % max_days) for h in digests.to_list()], dtype=pl.Int32)


def _case_like(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template.islower():
        return word.lower()
    return word


def surrogate_name(span: str, keyed: Keyed) -> str:
    """Each word of a name is replaced on its own (so "John Smith", "SMITH, JOHN" and "Dr. Smith" agree on Smith);
    initials stay initials, the case style and punctuation are kept."""

    def word(m: re.Match[str]) -> str:
        w = m.group(0)
        if len(w) == 1:
            return "ABCDEFGHJKLMNPRSTW"[keyed.pick("initial", w, 18)]
        pool = LAST_NAMES if keyed.pick("name-pool", w, 3) else FIRST_NAMES
        return _case_like(w, pool[keyed.pick("name", w, len(pool))])

    return re.sub(r"[A-Za-z][A-Za-z'\-]*", word, span)


def same_shape(span: str, keyed: Keyed, kind: str) -> str:
    """Digits → keyed digits, letters → keyed letters (case kept), everything else kept: MRN, accession, account,
    serial numbers keep their look, so downstream parsers still work."""
    stream = keyed.digest(kind, span) + keyed.digest(kind + "+", span)
    out = []
    for i, ch in enumerate(span):
        b = stream[i % len(stream)]
        if ch.isdigit():
            out.append(str(b % 10))
        elif ch.isalpha():
            c = chr(ord("A") + b % 26)
            out.append(c if ch.isupper() else c.lower())
        else:
            out.append(ch)
    return "".join(out)


def surrogate_phone(span: str, keyed: Keyed) -> str:
    """A fictional NANP number (555-01xx exchange block), in the original's layout."""
    digits = [c for c in span if c.isdigit()]
    fake = same_shape("".join(digits), keyed, "phone")
    base = list(fake)
    if len(base) >= 10:  # area code kept plausible, exchange 555, line 01xx (reserved for fiction)
        off = len(base) - 10
        base[off] = str(2 + int(base[off]) % 8)
        base[off + 3 : off + 8] = list("55501")
    it = iter(base)
    return "".join(next(it) if c.isdigit() else c for c in span)


def surrogate_email(span: str, keyed: Keyed) -> str:
    return f"user{keyed.pick('email', span, 10**6):06d}@example.org"


def surrogate_location(span: str, keyed: Keyed) -> str:
    m = re.match(r"^(.*?),\s*([A-Z]{2})\s+(\d{5})(-\d{4})?$", span)
    city = CITIES[keyed.pick("city", span.split(",")[0], len(CITIES))]
    if m:
        return f"{city}, {m.group(2)} {same_shape(m.group(3), keyed, 'zip')}"
    if re.fullmatch(r"\d{5}(-\d{4})?", span.strip()):
        return same_shape(span, keyed, "zip")
    return _case_like(span, city)


def surrogate_street(span: str, keyed: Keyed) -> str:
    lead = re.match(r"\d+", span)
    number = same_shape(lead.group(0) if lead else "100", keyed, "house")
    street = STREETS[keyed.pick("street", span, len(STREETS))]
    suffix = SUFFIXES[keyed.pick("street-suffix", span, len(SUFFIXES))]
    return f"{number.lstrip('0') or '1'} {street} {suffix}"


def surrogate_facility(span: str, keyed: Keyed) -> str:
    return _case_like(span, FACILITIES[keyed.pick("facility", span, len(FACILITIES))])


def surrogate_time(span: str, keyed: Keyed) -> str:
    m = re.match(r"^(\d{1,2}):(\d{2})(.*)$", span)
    if not m:
        return "[TIME]"
    minutes = keyed.pick("time", span, 24 * 60)
    hour = minutes // 60
    tail = m.group(3)
    if re.search(r"[ap]\.?m", tail, re.IGNORECASE):
        hour = hour % 12 or 12
    width = len(m.group(1))
    return f"{hour:0{width}d}:{minutes % 60:02d}{tail}"


# -- dates ----------------------------------------------------------------------------------------------------


def _month_name(template: str, month: int) -> str:
    name = MONTHS[month - 1]
    core = template.rstrip(".")
    if len(core) <= 4 and core.lower() != name.lower():
        name = name[: 4 if core.lower() == "sept" else 3]
    name = _case_like(core, name) if not core.istitle() else name
    return name + ("." if template.endswith(".") else "")


def _year_like(template: str, year: int) -> str:
    return f"{year % 100:02d}" if len(template) == 2 else f"{year:04d}"


def _num_like(template: str, n: int) -> str:
    return f"{n:02d}" if len(template) == 2 else str(n)


def _century(y: str) -> int:
    n = int(y)
    return n if len(y) == 4 else (2000 + n if n < 50 else 1900 + n)


_ORD = r"(?P<ord>st|nd|rd|th)?"
_DATE_FORMS: list[tuple[re.Pattern[str], Callable[[re.Match[str], int], str]]] = []


def _form(rx: str) -> Callable[[Callable[[re.Match[str], int], str]], Callable[[re.Match[str], int], str]]:
    def register(fn: Callable[[re.Match[str], int], str]) -> Callable[[re.Match[str], int], str]:
        _DATE_FORMS.append((re.compile(rx, re.IGNORECASE), fn))
        return fn

    return register


def _ordinal(day: int, had: str | None) -> str:
    if not had:
        return str(day)
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix.upper() if had.isupper() else suffix}"


@_form(r"^(?P<m>\d{1,2})(?P<sep>[/\-])(?P<d>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})$")
def _mdy(m: re.Match[str], off: int) -> str:
    d = dt.date(_century(m["y"]), int(m["m"]), int(m["d"])) + dt.timedelta(days=off)
    s = m["sep"]
    return f"{_num_like(m['m'], d.month)}{s}{_num_like(m['d'], d.day)}{s}{_year_like(m['y'], d.year)}"


@_form(r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})$")
def _iso(m: re.Match[str], off: int) -> str:
    return (dt.date(int(m["y"]), int(m["m"]), int(m["d"])) + dt.timedelta(days=off)).isoformat()


@_form(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$")
def _compact(m: re.Match[str], off: int) -> str:
    return (dt.date(int(m["y"]), int(m["m"]), int(m["d"])) + dt.timedelta(days=off)).strftime("%Y%m%d")


@_form(rf"^(?P<mon>[A-Za-z]+\.?) (?P<d>\d{{1,2}}){_ORD}(?P<comma>,?) (?P<y>\d{{4}})$")
def _month_d_y(m: re.Match[str], off: int) -> str:
    d = dt.date(int(m["y"]), _MON_ABBR[m["mon"].rstrip(".")[:4].lower().replace("sept", "sep")[:3]], int(m["d"]))
    d += dt.timedelta(days=off)
    return f"{_month_name(m['mon'], d.month)} {_ordinal(d.day, m['ord'])}{m['comma']} {d.year}"


@_form(rf"^(?P<d>\d{{1,2}}){_ORD}(?P<s1>[ \-])(?P<mon>[A-Za-z]+\.?)(?P<s2>[ \-,]+)(?P<y>\d{{4}})$")
def _d_month_y(m: re.Match[str], off: int) -> str:
    d = dt.date(int(m["y"]), _MON_ABBR[m["mon"].rstrip(".")[:3].lower()], int(m["d"])) + dt.timedelta(days=off)
    day = _ordinal(d.day, m["ord"]) if m["ord"] else _num_like(m["d"], d.day)
    return f"{day}{m['s1']}{_month_name(m['mon'], d.month)}{m['s2']}{d.year}"


@_form(rf"^(?P<mon>[A-Za-z]+\.?) (?P<d>\d{{1,2}}){_ORD}$")
def _month_d(m: re.Match[str], off: int) -> str:
    d = dt.date(2001, _MON_ABBR[m["mon"].rstrip(".")[:3].lower()], int(m["d"])) + dt.timedelta(days=off)
    return f"{_month_name(m['mon'], d.month)} {_ordinal(d.day, m['ord'])}"


@_form(r"^(?P<mon>[A-Za-z]+) (?P<y>\d{4})$")
def _month_y(m: re.Match[str], off: int) -> str:
    d = dt.date(int(m["y"]), _MON_ABBR[m["mon"][:3].lower()], 15) + dt.timedelta(days=off)
    return f"{_month_name(m['mon'], d.month)} {d.year}"


@_form(rf"^(?P<lead>on the )(?P<d>\d{{1,2}}){_ORD}$")
def _on_the(m: re.Match[str], off: int) -> str:
    d = dt.date(2001, 1, int(m["d"])) + dt.timedelta(days=off % 28)  # day of month only: moved within a month
    return f"{m['lead']}{_ordinal(d.day, m['ord'])}"


def shift_date(span: str, offset_days: int) -> str | None:
    """The date written in `span`, moved by `offset_days`, in the same written form; None if unparseable."""
    text = span.strip()
    for rx, build in _DATE_FORMS:
        m = rx.match(text)
        if m:
            try:
                return build(m, offset_days)
            except (ValueError, KeyError):
                return None
    return None
