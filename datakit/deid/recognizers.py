"""Radiology PHI recognizers (presidio `PatternRecognizer`s) and the clinical allow-list.

Names are found by cue (a title, a credential, "dictated/signed/read by", "discussed with", a "Patient:" header)
and by spaCy NER; identifiers by their label (MRN, accession, account, serial); dates in every written form.
Patterns are case-sensitive where case carries the signal (names) and use inline `(?i:…)` for cue words.
Every pattern is written so that measurements, vertebral levels, obstetric and scanner notation, and CPT/ICD
codes do not match (tests/deid/test_recognizers.py holds positive and negative examples for each).

A pattern that begins with a lookbehind (a cue before the PHI) is led by a lookahead that its own body implies
("(?=[A-Z]{0,3}\\d{5})" before an MRN's cue): the match set is unchanged, but the costly variable-width lookbehind
is tried only where the body can start, which makes the pattern pass ~3x faster (bench/deid.py).
"""

from __future__ import annotations

import functools
import hashlib
import json

import regex
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

from datakit.deid.shorthand import SHORTHAND

FLAGS = regex.DOTALL | regex.MULTILINE  # no IGNORECASE: capitalisation is what marks a name

# -- building blocks ------------------------------------------------------------------------------------------
_LABELS = (
    r"(?:Drs?|Mrs?|Ms|Miss|Doctor|MRN|MR|DOB|SSN|ACC|ACCESSION|EXAM|DATE|PATIENT|NAME|AGE|SEX|PHONE|FAX|MD|DO|NP|PA|RN)"
)
_UP, _LOW = r"\p{Lu}", r"\p{Ll}"  # letters of any script: "Grünewald", "Ødegaard"
_CAPS_STOP = "THE|AND|OF|ON|TO|IN|AT|FOR|WITH|IS|WAS|ARE|BY|FROM|OR|AS|AN"  # "BACK TO THE" is no name
_NAME_WORD = (
    rf"(?!(?:{_LABELS}|{_CAPS_STOP})\b)"
    rf"(?:{_UP}{_LOW}+(?:[-']{_UP}?{_LOW}+)?|{_UP}'{_UP}{_LOW}+|{_UP}\.(?!{_UP}\.)|{_UP}'?{_UP}+(?:[-']{_UP}+)?)"
)
_NAME = rf"{_NAME_WORD}(?:[ ]{_NAME_WORD}){{0,2}}"  # single spaces: a column gap ends the name
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_MONTH_I = rf"(?=[JFMASONDjfmasond])(?i:{_MONTH})"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MON = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19|20)\d{2}"

CREDENTIALS = r"(?:M\.?D\.?|D\.?O\.?|N\.?P\.?|P\.?A\.?(?:-C)?|R\.?N\.?|MBBS|PhD|RT\(R\)|RDMS|RTR)"
NAME_CUES_BEFORE = (
    r"(?:Drs?\.?|Doctor(?!:)|(?<!^)Doctor:|Mr\.?|Mrs\.?|Ms\.?|Miss|"
    r"(?i:dictated by|signed by|read by|reviewed by|interpreted by|"
    r"transcribed by|discussed with|communicated to|conveyed to|reported to|called to|notified|spoke with|"
    r"attending|resident|technologist|tech|referring(?: physician)?|ordering(?: physician| provider)?|"
    r"radiologist|physician|provider|cc|copy to))"
)
PATIENT_CUES = r"(?i:patient(?: name)?|pt(?: name)?|name)"
# "Doctor:" at a line's start is a speaker tag ("Doctor: Come on in"), not a title
# "Patient:" is also a speaker tag in dialogue ("Patient: My husband drove me"): what follows it there is speech
_SPEECH = sorted(
    STOP_WORDS
    | set(
        "yes yeah yep no nope okay ok hi hello hey good great thanks thank oh um uh hmm well sure alright right "
        "fine i'm i've i'd it's that's correct hm hmm ah aw mhm uh-huh nice perfect exactly absolutely wow gotcha "
        "really sorry please let's tell actually welcome wonderful awesome cool".split()
    ),
    key=lambda w: (-len(w), w),  # longest first; ties in a fixed order (a set's order changes per process)
)
NOT_SPEECH = rf"(?!(?i:{'|'.join(regex.escape(w) for w in _SPEECH)})\b)"


def local_result(
    recognizer: EntityRecognizer, entity: str, start: int, end: int, score: float, why: str
) -> RecognizerResult:
    """A result of one of datakit's own (non-pattern) recognizers, with presidio's metadata and explanation."""
    name = str(recognizer.name)  # type: ignore[has-type]
    explanation = AnalysisExplanation(recognizer=name, original_score=score, textual_explanation=why)
    return RecognizerResult(
        entity,
        start,
        end,
        score,
        analysis_explanation=explanation,
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
        },
    )


def _p(name: str, rx: str, score: float) -> Pattern:
    return Pattern(name=name, regex=rx, score=score)


def _recognizer(entity: str, name: str, patterns: list[Pattern], context: list[str] | None = None) -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity=entity,
        name=name,
        patterns=patterns,
        context=context or [],
        global_regex_flags=FLAGS,
    )


# numbers with a slash that are settings and scores, not dates: ventilator settings ("PEEP/PS 5/8", "CPAP 5/5",
# "BIPAP 10/5/12"), pain scores ("pain 5/10", "rating 3/10"), counts ("4/4 bottles", "2/2 views") and mixed numbers
# ("1 1/2 hr", "D5 1/2 NS"); read in any case, up to 16 characters before the number ("CPAP .5% 5/8")
_SETTING_BEFORE = (
    r"(?<!(?i:\b(?:peep|ps|psv|cpap|bipap|simv|imv|vent|ventilation|settings?)\b)[^\n]{0,12})"
    r"(?<!(?i:\b(?:pain|rating|rated|rates|scale|score|pupils?|perrla|strength|motor|power|pulses?)\b)"
    r"(?:[ \t]+(?i:as|of|at|is|was|now))?[ \t:=]*)"
    r"(?<!(?<![\d.])\d[ \t])(?<!(?i:d5)[ \t]?)(?<!%[ \t]{0,2})(?<!(?i:cpap|bipap|peep|ps|cp)[ \t]?)"
)
# the same words as a plain search over the text before a date-like number (for hits of other detectors)
SETTING_CONTEXT = regex.compile(
    r"(?i)\b(?:peep|ps|psv|cpap|bipap|simv|imv|vent|ventilation|settings?|pain|rating|rated|rates|scale|score|"
    r"pupils?|perrla|strength|motor|power|pulses?)\b[^\n]{0,12}$"
)
SETTING_AFTER_CONTEXT = regex.compile(
    r"[ \t]*(?i:of|tabs?|tablets?|caps?|mm|cm|ml|mg|times|x|strength|views?|ns|amps?|doses?|way|hrs?|hours?|bottles?|"
    r"cultures?|sets?|units?|bpm|lpm|up|bl|blood|abg|cx)\b|[ \t]*%"
)
MONTH_WORD = regex.compile(rf"\b{_MONTH_I}\b")
_SETTING_AFTER = (
    r"(?![ \t]*(?i:of|tabs?|tablets?|caps?|mm|cm|ml|mg|times|x|strength|views?|murmur|sm|hsm|dsm|ns|nss|amps?|"
    r"doses?|way|hrs?|hours?|bottles?|cultures?|sets?|st|nph|units?|bpm|lpm|l|up|bl|blood|abg|cx|np)\b)(?![ \t]*%)"
)


def radiology_recognizers() -> list[PatternRecognizer]:
    """The recognizers datakit adds to presidio's registry (entity names are presidio's where one exists)."""
    date_forms = [
        _p(
            "mdy_slash",
            rf"(?=\d)(?<![\d/.]){_SETTING_BEFORE}(?:{_MON})/(?:{_DAY})/(?:{_YEAR}|\d{{2}})(?![\d/]){_SETTING_AFTER}",
            0.9,
        ),
        _p("mdy_dash", rf"(?<![\d\-.])(?:{_MON})-(?:{_DAY})-(?:{_YEAR}|\d{{2}})(?![\d\-])", 0.85),
        _p("iso", rf"(?<![\d\-])(?:{_YEAR})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?![\d\-])", 0.9),
        _p("month_d_y", rf"\b{_MONTH_I}\.? {_DAY}(?:st|nd|rd|th)?,? {_YEAR}\b", 0.9),
        _p("d_month_y", rf"\b{_DAY}(?:st|nd|rd|th)?[ \-]{_MONTH_I}\.?[ \-,]+{_YEAR}\b", 0.9),
        _p("month_d", rf"\b{_MONTH_I}\.? {_DAY}(?:st|nd|rd|th)?\b(?!,? {_YEAR})(?! ?(?:mm|cm|%))", 0.6),
        _p("month_y", rf"\b{_MONTH_I}\.?(?:[ \t]+of)?[ \t]+{_YEAR}\b", 0.6),
        # a month and a two-digit year ("CABG 1/78", "ovarian ca (12/93)"): the second number is no day
        _p("month_yy", rf"(?=\d)(?<![\d/.])(?<!\d-){_SETTING_BEFORE}(?:{_MON})/(?:3[2-9]|[4-9]\d)(?![\d/])", 0.6),
        # a two-digit year after an apostrophe ("CABG '79", "mi in '08"); years may stay (Safe Harbor) but notes
        # write them as dates of events
        _p("apostrophe_year", r"(?<=[\s(,])['’]\d{2}\b(?![\d'’%])", 0.55),
        _p("on_the_nth", r"(?<=(?i:\bthe )[ \t]*)(?:[12]?\d|3[01])(?i:st|nd|rd|th)\b", 0.6),
        # month/day without a year (HIPAA: every date element but the year): "on 7/22", "7/22 0800", "returned 2/15";
        # not a fraction or a ratio ("1/2 tab", "3/4 of", "grade 2/4", "120/80", "5/5 strength")
        _p(
            "md_slash",
            rf"(?=\d)(?<![\d/.])(?<!\d-)(?<!(?i:grade|ratio|score|strength|power|x|bp|tab|gcs)[ \t]?){_SETTING_BEFORE}"
            rf"(?:{_MON})/(?:{_DAY})(?![\d/]){_SETTING_AFTER}",
            0.55,
        ),
        # month-day with a dash only after a date cue ("seen on 7-22", "dob 3-14"): a dash between numbers is
        # mostly a range ("2-3 days", "5-10 mg", "c5-6")
        _p(
            "md_dash",
            r"(?<=\b(?i:on|dated|date|dob|born|since|seen|admitted|discharged|until|through|returned|birth(?: is)?)"
            rf"[ \t:,]*)(?<![\d\-])(?:{_MON})-(?:{_DAY})(?![\d\-])"
            r"(?![ \t]*(?i:days?|weeks?|months?|years?|hours?|hrs?|times|occasions|mm|cm|ml|mg|x|%|minutes?|min)\b)",
            0.6,
        ),
        _p("compact", rf"(?<![\w.])(?:{_YEAR})(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\w)", 0.3),
    ]
    time = _p(
        "time_hm",
        r"(?<![\d:.])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:\s?(?i:[ap]\.?m\.?))?(?![\d:])",
        0.6,
    )
    return [
        _recognizer(
            "DATE_TIME",
            "RadiologyDateRecognizer",
            date_forms,
            ["date", "dated", "dates", "dob", "born", "performed", "prior"],
        ),
        _recognizer("TIME", "ClockTimeRecognizer", [time], ["time", "signed", "called", "dictated", "notified"]),
        _recognizer(
            "PERSON",
            "RadiologyNameRecognizer",
            [
                _p("cue_before", rf"(?=[A-Z])(?<=\b{NAME_CUES_BEFORE}:?[ \t]+){NOT_SPEECH}(?:{_NAME})", 0.9),
                # an author cited in running text: "(Rothrock)", "(Rothrock 2005)", "(Wada et al.)", "Canales B et
                # al." (a name no vocabulary knows is still a person's; the wordy-name filter drops "(Normal)")
                _p(
                    "citation",
                    rf"(?<=\()(?!{_LABELS}\b){_UP}{_LOW}+(?:[-']{_UP}?{_LOW}+)?(?=(?:,?[ \t]+(?:\d{{4}}|et al\.?))?\))"
                    rf"|\b(?!{_LABELS}\b){_UP}{_LOW}+(?:[-']{_UP}?{_LOW}+)?(?=(?:[ \t]+{_UP}{{1,2}})?,?[ \t]+et al\b)",
                    0.7,
                ),
                # a second name after a title's first ("Dr. Rakusin and Toolis aware", "Drs' Ballou and Dutter")
                _p(
                    "title_and",
                    rf"(?=[A-Z])(?<=\b(?:Drs?\.?'?|Doctors?)[ \t]+{_NAME_WORD}[ \t]+(?:and|&)[ \t]+){_NAME_WORD}",
                    0.85,
                ),
                # staff cited by their role before the name ("NP Wolfe aware", "per RN Kline"): a capitalised
                # word, not an acronym ("PA line", "RN aware" stay)
                _p(
                    "role_before",
                    rf"(?<=\b(?:NP|PA|RN|RRT|CNS|LPN|PA-C)[ \t]+)(?!{_LABELS}\b){_UP}{_LOW}+(?:[-']{_UP}?{_LOW}+)?"
                    rf"(?:[ ]{_UP}{_LOW}+)?",
                    0.75,
                ),
                _p("credential_after", rf"\b(?=[A-Z]){_NAME}(?=,?[ \t]+{CREDENTIALS}(?![A-Za-z]))", 0.9),
                _p(
                    "patient_header",
                    rf"(?=[A-Z])(?<=\b{PATIENT_CUES}[ \t]*[:#][ \t]*){NOT_SPEECH}"
                    rf"(?:{_NAME_WORD}(?:,[ ]?|[ ])){{0,2}}{_NAME_WORD}",
                    0.9,
                ),
            ],
        ),
        _recognizer(
            "MEDICAL_RECORD_NUMBER",
            "MrnRecognizer",
            [
                _p(
                    "mrn",
                    r"(?=[A-Z]{0,3}\d{5})"
                    r"(?<=\b(?i:mrn|mr#|medical record(?: number| no\.?| #)?|med rec(?: no\.?| #)?|unit no\.?|"
                    r"patient id|pt id|chart(?: no\.?| #)?)[ \t]*(?:[:#][ \t]*){0,2})[A-Z]{0,3}\d{5,12}\b",
                    0.95,
                ),
            ],
        ),
        _recognizer(
            "ACCESSION_NUMBER",
            "AccessionRecognizer",
            [
                _p(
                    "accession",
                    r"(?=[A-Z]{0,4}-?\d{5})"
                    r"(?<=\b(?i:accession|acc|acsn|exam id|study id|order(?: no\.?| #| number)?)(?i: number| no\.?| #)?"
                    r"[ \t]*(?:[:#][ \t]*){0,2})[A-Z]{0,4}-?\d{5,14}\b",
                    0.95,
                ),
            ],
        ),
        _recognizer(
            "ACCOUNT_NUMBER",
            "AccountRecognizer",
            [
                _p(
                    "account",
                    r"(?=[A-Z0-9][A-Z0-9-]{4})"
                    r"(?<=\b(?i:account|acct|policy|member|subscriber|insurance|claim|group|billing|encounter|fin|"
                    r"csn|visit)(?i: id| number| no\.?| #)?[ \t]*(?:[:#][ \t]*){0,2})"
                    r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{4,19}\b",
                    0.9,
                ),
            ],
        ),
        _recognizer(
            "DEVICE_SERIAL",
            "DeviceSerialRecognizer",
            [
                _p(
                    "serial",
                    r"(?=[A-Z0-9][A-Z0-9-]{4})"
                    r"(?<=\b(?i:serial|s/n|sn|lot|model|device id|udi)(?i: number| no\.?| #)?[ \t]*(?:[:#][ \t]*){0,2})"
                    r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{4,24}\b",
                    0.9,
                ),
            ],
        ),
        _recognizer(
            "DATE_OF_BIRTH",
            "DobRecognizer",
            [
                _p(
                    "dob",
                    r"(?=\d)"
                    r"(?<=\b(?i:dob|d\.o\.b\.|date of birth|born)[ \t]*:?[ \t]*)\d{1,4}[/\-.]\d{1,2}[/\-.]\d{2,4}\b",
                    0.9,
                )
            ],
        ),
        _recognizer(
            "AGE_OVER_89",
            "AgeOver89Recognizer",
            [
                _p(
                    "age",
                    r"\b(?:9\d|1[0-2]\d)(?=(?:[ \-](?i:years?|yrs?|y/?o|yo)\b|[ \-]?(?i:yo|y\.o\.|-year-old|year-old)"
                    r"|[ \t]?(?:M|F)\b))",
                    0.9,
                ),
                _p("age_word", r"(?=\d)(?<=\b(?i:age|aged)[ \t]+)(?:9\d|1[0-2]\d)\b", 0.9),
            ],
        ),
        _recognizer(
            "PHONE_NUMBER",
            "PhoneFaxRecognizer",
            [
                _p(
                    "nanp",
                    r"(?=[+(1-9])(?<![\w\-.])(?:\+?1[ \-.])?\(?[2-9]\d{2}\)?[ \-.]\d{3}[ \-.]\d{4}(?![\w\-])",
                    0.9,
                ),
                # pagers, beepers and extensions by their word ("beeper 55037", "Pager: #12345", "PG 23456")
                _p(
                    "ext",
                    r"(?=\d)(?<=\b(?i:ext|x|pager|pgr|pg|beeper|bpr|bleep|page)\.?[ \t]*:?[ \t]*#?[ \t]*)\d{3,7}\b",
                    0.6,
                ),
                # a local seven-digit number after a phone word ("reached at 202-6694", "cell 555 1234")
                _p(
                    "local",
                    r"(?=\d)(?<=\b(?i:call|phone|ph|tel|telephone|cell|cellular|mobile|home|work|fax|reached at|"
                    r"contact|number|no\.|#)[ \t:#\-]{0,3}(?:\(?\d{3}\)?[ \t\-.]{0,2})?)\d{3}[ \t\-.]\d{4}(?![\d\-])",
                    0.7,
                ),
                _p("ext_glued", r"(?<=\d{4})[ \t]?(?i:x|ext\.?)[ \t]?\d{2,6}\b", 0.8),
            ],
            ["phone", "telephone", "tel", "fax", "call", "callback", "pager", "cell"],
        ),
        _recognizer("US_SSN", "SsnRecognizer", [_p("ssn", r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)", 0.95)]),
        _recognizer("EMAIL_ADDRESS", "EmailRecognizer", [_p("email", r"\b[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+\b", 0.95)]),
        _recognizer(
            "URL",
            "UrlRecognizer",
            [
                _p(
                    "url",
                    r"(?i:\bhttps?://[^\s<>\"]+|\bwww\.[^\s<>\"]+|\b[\w\-]+\.(?:com|org|net|edu|gov|io)(?:/[^\s]*)?\b)",
                    0.9,
                )
            ],
        ),
        _recognizer(
            "IP_ADDRESS",
            "IpRecognizer",
            [
                _p(
                    "ipv4",
                    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d|\.\d)",
                    0.9,
                )
            ],
        ),
        _recognizer(
            "STREET_ADDRESS",
            "StreetAddressRecognizer",
            [
                _p(
                    "street",
                    r"\b\d{1,6}[ \t]+(?:[NSEW]\.?[ \t]+)?(?:[A-Z][a-z]+[ \t]+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|"
                    r"Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|"
                    r"Circle|Cir|Square|Sq|Trail|Trl|Pike|Row|Close|Crescent|Cres|Gardens|Grove|Mews|Walk|Rise|Hill|"
                    r"Green|Park)\b\.?(?:,?[ \t]+(?i:apt|suite|ste|unit|flat|#)\.?[ \t]*\w+)?",
                    0.9,
                ),
                # house numbers after the street, as much of Europe writes them ("Hauptstraße 12", "Rue de Rivoli
                # 8", "Calle Mayor 10", "Via Roma 3b")
                _p(
                    "street_number_after",
                    r"\b(?:\p{Lu}\p{Ll}+(?:straße|strasse|str\.|weg|gasse|allee|platz|laan|straat|gatan|vej)|"
                    r"(?:Rue|Avenue|Boulevard|Calle|Avenida|Via|Viale|Piazza|Rua|Plaza)(?:[ \t]+(?:de|du|des|la|del|"
                    r"di|da|dos)){0,2}(?:[ \t]+\p{Lu}\p{Ll}+){1,3})[ \t]+\d{1,4}[a-z]?\b",
                    0.85,
                ),
                _p("po_box", r"\b(?i:p\.?\s?o\.?\s?box)[ \t]+\d+\b", 0.9),
            ],
        ),
        _recognizer(
            "LOCATION",
            "CityStateZipRecognizer",
            [
                _p(
                    "city_state_zip",
                    r"\b[A-Z][a-z]+(?:[ \t][A-Z][a-z]+){0,2},[ \t]*[A-Z]{2}[ \t]+\d{5}(?:-\d{4})?\b",
                    0.9,
                ),
                _p("state_zip", r"(?=\d)(?<=\b[A-Z]{2}[ \t]+)\d{5}(?:-\d{4})?\b", 0.7),
                _p("zip_label", r"(?=\d)(?<=\b(?i:zip|zip code|postal code)[ \t]*:?[ \t]*)\d{5}(?:-\d{4})?\b", 0.9),
                # postcodes outside the US: the UK's ("SW1A 1AA", "M1 1AE") and Canada's ("K1A 0B1"), upper case;
                # a four- or five-digit code after a postcode word ("postcode 2000", "PLZ 10115", "CP 75008")
                _p("uk_postcode", r"\b[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[ABD-HJLNP-UW-Z]{2}\b", 0.8),
                _p(
                    "ca_postal_code",
                    r"(?=[A-Z]\d)(?<=\b(?:AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT|Canada),?[ \t]+)"
                    r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ \t\-]?\d[ABCEGHJ-NPRSTV-Z]\d\b",
                    0.8,
                ),
                _p(
                    "postcode_label",
                    r"(?=\d)(?<=\b(?i:postcode|post code|plz|cp|cap|code postal|postal)[ \t]*:?[ \t]*)\d{4,5}\b",
                    0.85,
                ),
            ],
        ),
        _recognizer(
            "ORGANIZATION",
            "FacilityRecognizer",
            [
                _p(
                    "facility",
                    r"\b(?:(?:St\.?|Saint|Mount|Mt\.?)[ \t]+)?(?:[A-Z][a-z]+[ \t]+){1,4}(?:Hospital|Medical Center|"
                    r"Medical Centre|Health(?:care)? System|Health Center|Clinic|Imaging(?: Center)?|Radiology|"
                    r"Infirmary|Institute|Memorial|Regional|University Hospital|Children's|Cancer Center)\b"
                    r"(?:[ \t]+(?:East|West|North|South|Downtown|Campus))?",
                    0.85,
                ),
                _p("facility_of", r"\b(?:University|Hospital|Clinic) of (?:[A-Z][a-z]+[ \t]?){1,3}\b", 0.85),
            ],
        ),
    ]


# Words a clinician writes with a capital letter that are not names: eponyms, scoring systems, anatomy, drugs,
# devices and report headings. A NER hit made only of these (or of words the corpus writes in lower case) is
# dropped; a cue pattern (Dr., MD, signed by …) still wins.
CLINICAL_ALLOW = (
    frozenset(
        w.lower()
        for w in """
Parkinson Parkinson's Hodgkin Hodgkin's Crohn Crohn's Alzheimer Alzheimer's Wilms Baker Baker's Colles Barrett Barrett's
Graves Graves' Cushing Cushing's Hashimoto Hashimoto's Bell Bell's Morison Morison's Gerota Gerota's Fleischner BI-RADS
LI-RADS TI-RADS PI-RADS Lung-RADS O-RADS C-RADS Bosniak Swan-Ganz Foley Doppler Coumadin Keppra Ativan Lasix Eliquis
Xarelto Heparin Lovenox Kerley Kerley's Schmorl Schmorl's Salter Harris Salter-Harris Segond Hill-Sachs Hill Sachs
Bankart Jones Smith Bennett Rolando Monteggia Galeazzi Maisonneuve Lisfranc Chopart Pott Pott's Boxer Hangman Jefferson
Chance Tillaux Weber Garden Schatzker Neer Gustilo Mallampati Glasgow Apgar Gleason Breslow Clark Ann Arbor Hounsfield
Virchow Virchow's Meckel Meckel's Zenker Zenker's Killian Hirschsprung Wilson Wilson's Paget Paget's Kaposi Ewing
Ewing's Burkitt Wegener Sjogren Sjögren Reiter Still Whipple Budd-Chiari Budd Chiari Dandy-Walker Dandy Walker Arnold
Klippel-Feil Klippel Feil Scheuermann Osgood-Schlatter Osgood Schlatter Legg-Calve-Perthes Perthes Kienbock Kienböck
Preiser Freiberg Kohler Köhler Sever Sinding-Larsen Baastrup Forestier Modic Pfirrmann Meyerding Denis Tile Young
Burgess Letournel Judet Frykman Gartland Milch Mason Essex-Lopresti Essex Lopresti Hawkins Sanders Bohler Böhler
Gissane Stener Stener's Mayfield Hoffa Hoffa's Wrisberg Humphrey Struthers Guyon Guyon's Poland Sprengel Madelung
Erlenmeyer Mach Ranke Ghon Ghon's Pancoast Hampton Hampton's Westermark Fleischner's Kussmaul Kerckring Houston
Treitz Oddi Vater Wirsung Santorini Calot Calot's Glisson Glisson's Couinaud Riedel Riedel's Spigelian Spigel Richter
Littre Amyand Amyand's Morgagni Bochdalek Zuckerkandl Rathke Rathke's Virchow-Robin Robin Willis Galen Monro Sylvius
Sylvian Luschka Magendie Meckel's Dorello Dorello's Broca Wernicke Wernicke's Heschl Heschl's Papez Chiari Arnold-Chiari
Marfan Marfan's Ehlers-Danlos Ehlers Danlos Turner Turner's Down Down's Kartagener Kartagener's Mounier-Kuhn Swyer-James
Swyer James Macleod Loeffler Loffler Löffler Caplan Caplan's Boerhaave Mallory-Weiss Mallory Weiss Barrett's Schatzki
Schatzki's Plummer-Vinson Plummer Vinson Menetrier Ménétrier Zollinger-Ellison Zollinger Ellison Peutz-Jeghers Gardner
Lynch Caroli Caroli's Klatskin Klatskin's Mirizzi Mirizzi's Courvoisier Murphy Murphy's McBurney McBurney's Rovsing
Valsalva Trendelenburg Fowler Stanford DeBakey Bentall Ross Fontan Glenn Norwood Blalock-Taussig Blalock Taussig
Rastelli Jatene Mustard Senning Kawasaki Takayasu Buerger Raynaud Raynaud's Leriche Adamkiewicz Batson Batson's
Hickman Port-a-Cath Broviac Quinton Greenfield Palmaz Wallstent Amplatzer Watchman Impella Mitraclip MitraClip Medtronic
Nissen Roux-en-Y Roux Billroth Hartmann Hartmann's Whipple's Kasai Ladd Ladd's Meckel Gerdy Gerdy's Lister Lister's
Scarpa Scarpa's Hunter Hunter's Alcock Alcock's Douglas Retzius Denonvilliers Cowper Cowper's Bartholin Bartholin's
Skene Skene's Nabothian Gartner Gartner's Krukenberg Meigs Sister Mary Joseph Sister Mary Joseph's Stein-Leventhal
Asherman Asherman's Mullerian Müllerian Wolffian Fallopian Eustachian Bartter Fanconi Alport Goodpasture Berger
Wegener's Churg-Strauss Churg Strauss Henoch-Schonlein Henoch Schonlein Schönlein Behcet Behçet Kimura Castleman
Castleman's Rosai-Dorfman Erdheim-Chester Langerhans Hurthle Hürthle Warthin Warthin's Kuttner Küttner Ludwig Ludwig's
Lemierre Lemierre's Gradenigo Tolosa-Hunt Tolosa Horner Horner's Adie Marcus Gunn Argyll Robertson Brown-Sequard
Brown-Séquard Guillain-Barre Guillain-Barré Guillain Barre Lhermitte Devic Devic's Marchiafava-Bignami Creutzfeldt-Jakob
Creutzfeldt Jakob Huntington Huntington's Pick Pick's Binswanger Moyamoya Sturge-Weber Sturge Hippel-Lindau Lindau
Bourneville Recklinghausen Gorlin Cowden Li-Fraumeni Fraumeni Menkes Canavan Alexander Krabbe Tay-Sachs Gaucher
Niemann-Pick Niemann Hurler Hunter's Morquio Sanfilippo Fabry Pompe Hallervorden-Spatz Fahr Fahr's Wallerian Cajal
Purkinje Schwann Betz Golgi Nissl Lewy Hirano Rosenthal Duret Kernohan Kernohan's Cushing's Conn Conn's Addison
Addison's Sheehan Sheehan's Nelson Kallmann Klinefelter Prader-Willi Angelman Noonan Williams DiGeorge Edwards Patau
Beckwith-Wiedemann Wiedemann Potter Potter's Eisenmenger Ebstein Ebstein's Fallot Shone Bland-White-Garland Scimitar
Kommerell Kommerell's Stanford's Rokitansky-Aschoff Rokitansky Aschoff Luschka's Heister Hartmann's Phrygian
Grynfeltt Petit Petit's Spieghel Hesselbach Hesselbach's Poupart Poupart's Cooper Cooper's Gimbernat Colles'
Smith's Barton Barton's Chauffeur Holstein-Lewis Holstein Lewis Bado Hume Essex Pellegrini-Stieda Pellegrini Stieda
Stieda's Osgood Haglund Haglund's Achilles Achilles' Morton Morton's Freiberg's Jones' Maisonneuve's Tillaux's Kager
Kager's Boehler Lauge-Hansen Lauge Hansen Danis-Weber Danis AO OTA Kellgren-Lawrence Kellgren Lawrence Outerbridge
Tonnis Tönnis Crowe Dorr Brooker Paprosky Gruen Vancouver DeLee Charnley Harris' Shenton Shenton's Klein Klein's
Perkins Hilgenreiner Hilgenreiner's Graf Graf's Wiberg Wiberg's Risser Cobb Cobb's Ferguson Nash-Moe Nash Moe
Greulich Pyle Tanner Tanner-Whitehouse Whitehouse Frankel ASIA Bethesda TNM RECIST WHO FIGO Ann-Arbor Lugano Deauville
Milan UCSF Barcelona Child-Pugh Pugh MELD Balthazar Atlanta Ranson Alvarado Wells Geneva PERC Agatston Framingham
CAD-RADS NASCET ECST Spetzler-Martin Spetzler Martin Hunt Hess Fisher Borden Cognard Fazekas Scheltens Koedam Evans
Evans' Hoehn Yahr Rankin NIHSS ASPECTS Ottawa Canadian NEXUS Denver Biffl Marshall Rotterdam Helsinki Stockholm
Lund-Mackay Lund Mackay Keros Onodi Onodi's Haller Haller's Agger Nasi Kadish Hyams Bosniak's Wilms' Hodgkin's
Non-Hodgkin Non-Hodgkin's Gleason's Breslow's Clark's Pancoast's Kerley's Hampton's Westermark's Golden Golden's
Reid Reid's Silverman Silverman's Caffey Caffey's Blount Blount's Legg Calve Calvé Kohler's Panner Panner's
Sinding Larsen Johansson Osgood-Schlatter's Sever's Iselin Iselin's Thiemann Scheuermann's Schmorl's Calvé's
Tc-99m Tc99m MAG3 DTPA HIDA MIBG FDG PSMA Gallium Technetium Gadolinium Gadavist Dotarem MultiHance Eovist Omnipaque
Isovue Visipaque Optiray Ultravist Definity Lumason Optison Barium Gastrografin Readi-Cat Volumen Breeza Siemens Philips
GE Toshiba Canon Hitachi Fuji Fujifilm Hologic Carestream Agfa Konica Samsung Esaote Mindray Varian Elekta Accuray
Tesla Hounsfield's Siemens' Philips' Dixon Stejskal-Tanner Fourier Larmor Bloch Gibbs Nyquist Doppler's Ganz Swan
Foley's Pigtail Mediport PICC Groshong Tenckhoff Pleurx PleurX Blake Jackson-Pratt Jackson Pratt Hemovac Penrose
Malecot Cope Dobhoff Salem Levin Sengstaken-Blakemore Minnesota Miller-Abbott Cantor Bakri Mirena Paragard ParaGard
Essure Nexplanon Implanon Harrington Luque Cotrel-Dubousset Steinmann Kirschner Herbert Acutrak Ilizarov Taylor
Gamma Zimmer Stryker Synthes Smith-Nephew DePuy Biomet Wright Exactech Medacta Mako Rosa Ethicon Covidien Bard Cook
Boston Scientific Abbott Edwards' Sapien Evolut CoreValve Melody Harmony Inspire Micra Nanostim Biotronik Sorin
LivaNova Cyberonics Nevro Axonics Interstim InterStim Baclofen Coumadin's Warfarin Tylenol Motrin Advil Aleve Norco
Percocet Dilaudid Fentanyl Morphine Zofran Reglan Protonix Prilosec Nexium Pepcid Zantac Lipitor Crestor Zocor Plavix
Brilinta Effient Aspirin Metformin Lantus Humalog Novolog Synthroid Levoxyl Prednisone Solu-Medrol Decadron Medrol
Keflex Ancef Rocephin Zosyn Vancomycin Flagyl Cipro Levaquin Bactrim Augmentin Zithromax Doxycycline Diflucan Valtrex
Tamiflu Humira Remicade Enbrel Rituxan Herceptin Avastin Keytruda Opdivo Yervoy Tecentriq Imfinity Imfinzi Tagrisso
Gleevec Lupron Zoladex Xgeva Prolia Zometa Fosamax Boniva Reclast Forteo Evenity Tymlos Depakote Dilantin Tegretol
Lamictal Topamax Neurontin Lyrica Xanax Valium Klonopin Haldol Seroquel Zyprexa Risperdal Abilify Lithium Zoloft Prozac
Lexapro Celexa Paxil Effexor Cymbalta Wellbutrin Remeron Trazodone Ambien Sinemet Aricept Namenda Tysabri Ocrevus
Copaxone Avonex Rebif Gilenya Tecfidera Aubagio Mavenclad Kesimpta
HISTORY FINDINGS IMPRESSION TECHNIQUE COMPARISON INDICATION CLINICAL EXAM PROCEDURE CONCLUSION RESULT RESULTS REPORT
ADDENDUM PRELIMINARY FINAL LATERAL FRONTAL PA AP OBLIQUE AXIAL CORONAL SAGITTAL LEFT RIGHT BILATERAL CHEST ABDOMEN
PELVIS HEAD BRAIN SPINE NECK KNEE SHOULDER HIP ANKLE WRIST ELBOW HAND FOOT CT MRI MR XR US NM PET DEXA DXA CTA MRA
Pulmonary Cardiac Cardiomediastinal Mediastinal Pleural Osseous Impression Findings Technique Comparison Indication
History Lateral Frontal Portable Upright Supine Prone Decubitus Axial Coronal Sagittal Left Right Bilateral No None
Normal Stable Unchanged Acute Chronic Mild Moderate Severe Small Large Heart Lungs Lung Liver Spleen Kidney Kidneys
Pancreas Gallbladder Bladder Aorta Trachea Bowel Colon Stomach Uterus Ovary Ovaries Prostate Thyroid Mediastinum Hilar
Hila Diaphragm Ribs Spine Vertebral Osseous Soft Tissues Tissue Impressions Electronically Signed Dictated Transcribed
Exam Date Service Accession Patient Name Medical Record DOB SSN MRN MD Email Phone Fax Tel Acc Dr Mr Mrs Ms NP PA RN
Callback Pager Cell Signed Read Reviewed Discussed Communicated Attending Resident Technologist Referring Ordering
MAMMO Mammo Mammogram Tomo CC MLO ML LM XCCL Apex Apices Apical Hilum Hilar Carina Lingula Lingular Costophrenic
Cardiophrenic Hemidiaphragm Hemidiaphragms Retrocardiac Paratracheal Perihilar Subsegmental Bibasilar
Preop Postop Periop Intraop Followup Workup Fig Figs Noncontrast Clinician
""".split()
    )
    | SHORTHAND
)  # and ICU shorthand that is also a census name (datakit/deid/shorthand.py)


@functools.cache
def radiology_fingerprint() -> str:
    """`recognizer_fingerprint` of `radiology_recognizers()`, built once per process (config hash and audit)."""
    return recognizer_fingerprint(radiology_recognizers())


def recognizer_fingerprint(recognizers: list[PatternRecognizer]) -> str:
    """sha256 over every recognizer's name, entity, patterns, scores and context: the audit names the exact set."""
    spec: list[dict[str, object]] = [
        {
            "name": str(r.name),  # type: ignore[has-type]
            "entity": r.supported_entities,
            "patterns": [(p.name, p.regex, p.score) for p in r.patterns],  # type: ignore[has-type]
            "context": r.context,
        }
        for r in recognizers
    ]
    spec.append({"allow": sorted(CLINICAL_ALLOW)})
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
