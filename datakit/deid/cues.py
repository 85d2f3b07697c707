"""Cue rules that do not read capitalisation (a presidio `LocalRecognizer`): names after titles, roles, relation
words, greetings and spoken introductions and before credentials; institutions before a facility word; saints'
names and site abbreviations after at/to/from.

The pattern recognizers find "Dr. Healey" by its capital; these rules find "dr healey", "DR WHITE", "husband joe",
"per dr x", "next patient is paul edwards", "kernan hosp", "followed at gh" in text of any case. A candidate word
must look like a name: not a stop word, not clinical, and (after a relation word, a greeting or a preposition) not
an ordinary English word either; after a doctor's title the word is taken unless it is a stop word or clinical
("dr white" is a name, "dr to review" is not). Ordinary words that are also names count only where a name has
begun or a cue says one is said: a frequent surname after a first name ("dr ngozi hill"), a frequent first name
after a relation word or on its own ("son faith at bedside", "okay dawn, you can").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import regex
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS

from datakit.content import PLACEHOLDER_PATTERN
from datakit.deid.recognizers import local_result
from datakit.deid.truecase import (
    Truecaser,
    any_census_name,
    common_first_names,
    common_surnames,
    english_words,
    in_vocabulary,
)

NAME = "CaseInsensitiveCueRecognizer"
FREQUENT_ZIPF = 3.5  # after a cue, an English word this frequent that no census list holds is no name ("newly")
GREETED_ZIPF = 3.8  # "dragon" 4.1 is a word after "hey"; "sven" 3.3, "leopold" 3.3 are names
SUBJECTS = frozenset("pt pts patient child infant baby neonate toddler gentleman lady".split())  # "pt is a 92 yo"
SCORE = 0.85
DOCTOR_CUES = r"dr|drs|doctor|prof"
TITLE_CUES = rf"{DOCTOR_CUES}|mr|mrs|ms|miss"
ROLE_CUES = (
    r"per|seen by|called|spoke with|spoke to|discussed with|d/w|paged|notified|signed by|dictated by|read by|reach|"
    r"attending|resident|fellow|pcp|cc|"
    # dictated and spoken introductions ("next patient is paul edwards", "today i'm seeing christina cooper")
    r"patient is|next patient is|new patient|this is|seeing|next is|my name is|name is|"
    # a consult's request ("asked to see priya for copd"; the word must still look like a name)
    r"asked to see|to see|saw"
)
RELATION_CUES = (
    r"husband|wife|son|daughter|mother|father|mom|dad|sister|brother|friend|neighbor|neighbour|guardian|partner|"
    r"fiance|fiancee|niece|nephew|aunt|uncle|grandson|granddaughter|caregiver|boyfriend|girlfriend|spouse|"
    # notes' shorthand for them, and clergy who visit ("dtr philomena", "rabbi klein")
    r"dtr|dau|sis|bro|husb|cousin|stepson|stepdaughter|rabbi|chaplain|pastor|reverend|rev|father|fr|"
    # plurals and the common misspelling ("wife and neice in", "mother, aunts")
    r"neice|nieces|neices|nephews|aunts|uncles|cousins"
)
RELATION_WORDS = frozenset(RELATION_CUES.split("|")) | {"family", "sons", "daughters", "brothers", "sisters"}
FACILITY_WORDS = (
    r"hospital|hosp|medical center|medical centre|med ctr|med center|clinic|rehabilitation center|"
    r"nursing home|nursing facility|health center|health system|imaging center|infirmary|memorial"
)
# short or common: the word before must look like a name ("calvert er", "witham health"; not "the er", "mental
# health")
UNIT_WORDS = r"er|ew|ed|icu|snf|ltac|rehab|health"
NAMED_WITH = frozenset({"health"})  # a unit word that is part of the institution's name ("Witham Health")
SITE_CUES = r"at|to|from|transfer(?:red)?(?: to| from)?|via"
PLACE_CUES = rf"{SITE_CUES}|of|in"  # before an institution's name ("dr sato of major hospital")
# words that make a facility word generic, not a name, even after at/to/from ("at pain clinic", "to cardiology
# clinic"): an institution named only by other words ("transferred to major hospital") is a name
SERVICES = frozenset(
    "pain cancer eye heart wound urgent care cardiology cardiac dialysis mental behavioral behavioural sleep "
    "fertility allergy dermatology surgery surgical orthopedic orthopaedic orthopedics oncology psychiatric psych "
    "women's womens family primary specialty outpatient inpatient walk-in free va vascular vein spine kidney "
    "diabetes endocrine gi ent ob obgyn ob/gyn pediatric paediatric peds teaching memory imaging radiology lab "
    "laboratory anticoagulation coumadin infusion transplant chest lung breast hand foot rheumatology neurology "
    "urology hepatology gastroenterology pulmonary nephrology hematology infectious disease diseases "
    "travel vaccine vaccination flu covid student employee health medical day rehab "
    "rehabilitation physical therapy occupational speech hearing dental vision wellness weight loss bariatric "
    "stroke trauma burn sports medicine internal psychiatry obstetrics gynecology maternity newborn".split()
)
GREETINGS = (
    r"hi|hello|hey|thanks|thank you|bye|goodbye|good morning|good afternoon|good evening|okay|ok|alright|all right|"
    r"welcome|sorry|sure|great|perfect|excuse me|nice to meet you"
)
GENERIC = frozenset(  # words before a facility word, or after at/to/from, that name no place of their own
    "outside another other same this that our their local referring prior previous the a an any osh nearest "
    "nearby private rehab icu ccu micu sicu nicu picu snf ltac ltach er ed or pacu cath ems home floor ward unit "
    "clinic hospice".split()
)
_WORDS = r"\p{L}[\p{L}'\-]*"  # letters of any script ("grünewald", "o'donnell")
_DOT = r"(?:[ \t]*\.)?"  # a title's full stop, also as transcripts write it ("dr . lopez")
_DOCTOR = regex.compile(rf"(?i)\b(?:{DOCTOR_CUES})\b'?{_DOT}[ \t]+({_WORDS}(?:[ \t]+{_WORDS})?)")
# the second of two doctors named after one title ("dr. rakusin and toolis aware", "drs ballou and dutter")
_DOCTORS_AND = regex.compile(rf"(?i)\b(?:{DOCTOR_CUES})\b'?{_DOT}[ \t]+{_WORDS}[ \t]+(?:and|&)[ \t]+({_WORDS})")
# spoken titles too, as transcripts write them ("mister thompson", "missus tatum")
_MISTER = regex.compile(rf"(?i)\b(?:mr|mrs|ms|miss|mister|missus|misses)\b{_DOT}[ \t]+({_WORDS}(?:[ \t]+{_WORDS})?)")
_ROLE = regex.compile(
    rf"(?i)\b(?:{ROLE_CUES})\b[ \t]*[:,]?[ \t]+(?:(?:{TITLE_CUES})\b{_DOT}[ \t]+)?({_WORDS}(?:[ \t]+{_WORDS})?)"
)
# a name introduced by what follows it: "carolyn is a 34-year-old", "beverly's a 24 year old", "kayla ward , date
# of birth", "Elijah Reyes is a pleasant 62-year-old", "Kayla reports". A pair (anchor, words before it): the anchor
# is searched first, then the one or two words right before it (`_preceded`), so the costly part runs only where
# an anchor is, not at every word of the text
_INTRODUCED = (
    regex.compile(
        r"(?i)(?:\bis|'s)[ \t]+an?[ \t]+(?:[ \t,]*\b(?:uh|um|er)\b[ \t,]*)?"  # "is a , uh , 52-year-old"
        r"(?:(?:very[ \t]+)?pleasant\b|\d{1,3}[ \t]*-?[ \t]*(?:year|yr|yo\b|y/o|y\.o\.|"
        r"month|week))|[,.][ \t]*(?:date of birth|dob\b|birth date|born\b)"
        r"|\b(?:states|reports|denies|presents|returns|complains|endorses)\b"
    ),
    regex.compile(rf"\b({_WORDS}(?:[ \t]+{_WORDS})?)[ \t]*$"),
)
_RELATION = regex.compile(rf"(?i)\b(?:{RELATION_CUES})(?:'s)?\b,?[ \t]+({_WORDS}(?:[ \t]+{_WORDS})?)")
# a name before a credential in any case ("elijah baptiste rn"); not "do" or "pa", which are words
_CREDENTIAL = (
    regex.compile(  # not "md's exam"
        r"(?i)\b(?:(?:md|np|rn|phd|lpn|crna|dds|pa-c|rrt|crt|cna|lcsw|msw|ccrn|bsn|aprn|fnp|dnp|pharmd)\b|m\.d\.)(?!')"
    ),
    regex.compile(rf"\b((?:{_WORDS}[ \t]+)?{_WORDS})[ \t]*,?[ \t]+$"),
)
_LOOK_BACK = 80  # characters before an anchor where its name is looked for
# an initial and a surname, as notes cite staff ("e. welsh aware", "per b. kargas-pt", "z. miller in to strip");
# the surname part of a hyphenated word ("kargas-pt") is read
_INITIAL = regex.compile(r"(?i)(?<=^|[\s(,;:])([a-z])\.[ \t]?(\p{L}[\p{L}']+)(?:-\p{L}{1,3}\b)?", regex.M)
# what a note writes around a staff member cited by initial and surname: "per b. kargas", "e. welsh aware", "m.
# peppler placing stitch", "k. abrams pa" (a surname no census list holds needs one of them)
_STAFF_BEFORE = regex.compile(r"(?i)\b(?:per|by|with|and|to|called|paged|notified|dr|np|rn|pa)\.?[ \t]*$")
_STAFF_AFTER = regex.compile(
    r"(?i)[ \t,]*(?:aware|notified|informed|updated|called|paged|placing|placed|in to|here|at bedside|md|np|rn|pa|"
    r"rrt|pa-c|ordered|said|states)\b"
)
# genus initials, rhythms and the like: "s. aureus", "e. coli", "a. fib", "v. tach" (a clinical word also stops it)
NOT_AFTER_INITIAL = frozenset(
    "fib flutter tach diff flu coli aureus epi epidermidis pneumo pneumoniae aeruginosa cepacia faecalis faecium "
    "pylori albicans glabrata fragilis marcescens cloacae baumannii maltophilia mirabilis influenzae catarrhalis "
    "pyogenes agalactiae viridans perfringens difficile lugdunensis haemolyticus hominis capitis".split()
)
_FACILITY = regex.compile(rf"(?i)\b(?:({FACILITY_WORDS})|({UNIT_WORDS}))\b")
_BEFORE_FACILITY = regex.compile(rf"(?i)(?:\b({PLACE_CUES})[ \t]+)?((?:\b{_WORDS}\.?[ \t]+){{1,4}})$")
_FACILITY_NEXT = regex.compile(rf"(?i)[ \t]+(?:{FACILITY_WORDS})\b")
# what may follow an institution's facility word as part of its name: a campus or a place ("community hospital
# east", "memorial hospital of south bend": the place's words are capitalised in the view)
_FACILITY_TAIL = regex.compile(
    r"[ \t]+(?i:east|west|north|south|downtown|campus)\b|[ \t]+(?i:of)(?:[ \t]+\p{Lu}\p{L}*){1,3}"
)
# a saint's name after at/to/from, with the word before it ("at ascension st. vincent", "to st. elizabeth")
_SAINT = regex.compile(rf"(?i)\b(?:{SITE_CUES})[ \t]+((?:{_WORDS}[ \t]+)?(?:st\.?|saint)[ \t]+{_WORDS})")
# where an abbreviation names a site: at/from it, or moved to it ("followed at gh", "films from svh", "transferred
# to cnh"); not after a bare "to" or "via", where clinical shorthand stands ("ngt to lis", "weaned to ra", "via tlc")
ABBREVIATION_CUES = (
    r"at|from|(?:transfer|transferred|transfered|admitted|sent|taken|returned|discharged|brought|moved|going|went|ems)"
    r"[ \t]+(?:to|from|back to)"
)
# a university (hospital) by its state or town: "university of maryland medical", "u of md med center", "u maryland
# er" (a state's two-letter code only after "of")
_UNIVERSITY = regex.compile(r"(?i)\b(?:university|univ\.?|u)[ \t]+(?:(of)[ \t]+)?(\p{L}+(?:[ \t]+\p{L}+)?)")
STATE_CODES = frozenset(
    "al ak az ar ca co ct de fl ga hi id il in ia ks ky la me md ma mi mn ms mo mt ne nv nh nj nm ny nc nd oh ok or "
    "pa ri sc sd tn tx ut vt va wa wv wi wy dc".split()
)
STATE_NAMES = frozenset(
    "alabama alaska arizona arkansas california colorado connecticut delaware florida georgia hawaii idaho illinois "
    "indiana iowa kansas kentucky louisiana maine maryland massachusetts michigan minnesota mississippi missouri "
    "montana nebraska nevada ohio oklahoma oregon pennsylvania tennessee texas utah vermont virginia washington "
    "wisconsin wyoming".split()
) | {
    "new hampshire",
    "new jersey",
    "new mexico",
    "new york",
    "north carolina",
    "north dakota",
    "rhode island",
    "south carolina",
    "south dakota",
    "west virginia",
}
_SITE = regex.compile(rf"(?i)\b(?:{ABBREVIATION_CUES})[ \t]+(?:the[ \t]+)?([a-z]{{2,5}})\b(?![\-/'])")
_ALONE = regex.compile(r"[ \t]*(?:[,.;:!?)]|$)", regex.M)  # a word said on its own: a comma, a stop, the line's end
_PLACEHOLDER = regex.compile(rf"(?i:{PLACEHOLDER_PATTERN})")
# a first name said to someone in conversation, read only where the word is a census first name: after a strong
# greeting anywhere ("thanks cranmore", "hey dylan"), between "so" and a comma ("so , logan , what happened"),
# before the question mark of a closing question ("any questions , lawrence ?")
_ADDRESSED = regex.compile(
    rf"(?i)\b(?:hi|hello|hey|thanks|thank you|bye|goodbye)[ \t]*,?[ \t]+({_WORDS})\b"
    rf"|\bso[ \t]*,?[ \t]+({_WORDS})[ \t]*,"
    rf"|\b(?:questions|okay|ok|alright|right)[ \t]*,?[ \t]+({_WORDS})[ \t]*\?"
)
_DIALOGUE = regex.compile(
    rf"(?i)(?:^|[\]:.?!,]|\b(?:so|well|oh|um|uh|yeah|yes|and)\b)[ \t]*(?:(?:{GREETINGS})[ \t]*,?[ \t]+)+({_WORDS})\b"
)


# where a name goes, for the corpus vocabulary (engine.cued_names): every cue above, each with its name position
CUED_NAME = regex.compile(
    rf"(?i)\b(?:{TITLE_CUES}|{ROLE_CUES}|{RELATION_CUES}|{GREETINGS})\b\.?,?:?[ \t]+"
    rf"(?:(?:{TITLE_CUES})\b\.?[ \t]+)?({_WORDS}(?:[ \t]+{_WORDS})?)"
    rf"|\b({_WORDS}),?[ \t]+(?:md|do|np|rn|pa-c|phd)\b"
    rf"|\b((?:{_WORDS}[ \t]+){{1,3}})(?:{FACILITY_WORDS}|{UNIT_WORDS})\b"
    rf"|\b(?:{ABBREVIATION_CUES})[ \t]+([a-z]{{2,5}})\b"  # read by Polars (Rust regex: no look-around)
    rf"|\b({_WORDS}(?:[ \t]+{_WORDS})?)"
    rf"(?:[ \t]+is[ \t]+an?[ \t]+(?:pleasant[ \t]+)?\d|[ \t]*,[ \t]*(?:date of birth|dob))"
)
CUE_WORDS = frozenset(
    "dr drs doctor prof mr mrs ms miss md do np rn pa-c phd per cc attending resident fellow pcp hi hello hey thanks "
    "bye".split()
)


def _preceded(rules: tuple[regex.Pattern[str], regex.Pattern[str]], text: str) -> Iterator[regex.Match[str]]:
    """For each match of the anchor `rules[0]`, the match of `rules[1]` (anchored at the text's end) on the
    `_LOOK_BACK` characters before it, in the text's offsets."""
    anchor, before = rules
    for m in anchor.finditer(text):
        found = before.search(text, max(0, m.start() - _LOOK_BACK), m.start())
        if found:
            yield found


class CaseInsensitiveCueRecognizer(LocalRecognizer):
    """PERSON after titles, roles, relation words and greetings; ORGANIZATION for institutions and site
    abbreviations; in any case (reads the truecaser's word sets, not capitals)."""

    def __init__(self, truecaser: Truecaser, clinical: frozenset[str]) -> None:
        self.truecaser = truecaser
        self.surnames = common_surnames()
        self.first_names = common_first_names()
        self.census = any_census_name()
        self.frequent_words = english_words(FREQUENT_ZIPF) - truecaser.names
        self.spoken_words = frozenset(STOP_WORDS) | truecaser.common  # "that's", "let's", "we'll": no names
        # after a greeting, an English word this frequent is no name ("hey dragon"); "sven", "leopold" may be
        self.greeting_words = english_words(GREETED_ZIPF)
        self.clinical = clinical
        super().__init__(supported_entities=["PERSON", "ORGANIZATION"], name=NAME, supported_language="en")

    def load(self) -> None:
        return None

    def _plain(self, word: str) -> bool:
        w = word.lower().strip("'-.")
        clinical = w in self.clinical and w not in self.truecaser.names  # "mary", "smith": names, eponyms or not
        # a contraction of a stop or common word is no name ("that's", "let's", "we'll"); "o'brien" is one
        spoken = "'" in w and in_vocabulary(w, self.spoken_words)
        return not w or w in STOP_WORDS or clinical or spoken or bool(_PLACEHOLDER.fullmatch(w))

    def _ordinary(self, word: str) -> bool:
        w = word.lower().strip("'-.")
        return self._plain(word) or (w in self.truecaser.ordinary and w not in self.truecaser.names)

    def _common(self, word: str) -> bool:
        """Too frequent to be a name where a cue says one may follow ("husband called"; not "husband arjun")."""
        w = word.lower().strip("'-.")
        return self._plain(word) or (w in self.truecaser.common and w not in self.truecaser.names)

    def _name_words(
        self,
        text: str,
        m: regex.Match[str],
        strict: bool,
        relation: bool = False,
        titled: bool = False,
        greeted: bool = False,
        role: bool = False,
    ) -> list[tuple[int, int]]:
        per = role and m.group(0).lower().startswith("per")
        """The leading words of group 1 that pass: after a doctor's title anything but a stop word or a
        placeholder ("dr white"), after mr/mrs/ms a frequent surname too ("mr. fox"; not "MR images"); otherwise
        (strict) not clinical and not an ordinary word either, unless a frequent first name after a relation word
        ("son faith at bedside") or said on its own ("okay dawn, you can")."""
        out: list[tuple[int, int]] = []
        first = ""
        for i, w in enumerate(re.finditer(r"\S+", m.group(1))):
            word = w.group(0)
            low = word.lower().strip("'-.")
            # a frequent surname, or a capitalised word, after a name's first word is a surname ("dr ngozi hill",
            # "attending mei king", "daughter, Gary Field"); a frequent first name said on its own, before a
            # comma or a stop, is a name ("my wife, faith, made me", "okay dawn, you can")
            surname = (i > 0 or titled) and (self._surname(word) or (word[:1].isupper() and not word.isupper()))
            alone = i == 0 and low in self.first_names and (relation or bool(_ALONE.match(text, m.start(1) + w.end())))
            if (
                not low
                or low in STOP_WORDS
                or _PLACEHOLDER.fullmatch(low)
                or (strict and self._common(word) and not (surname or alone))
                # an ordinary English word no census list holds is no name after a cue ("son newly graduated",
                # "family witnessed"); "son faith", "mr. fox", "dr hill" are census names
                or (strict and i == 0 and low in self.frequent_words and low not in self.census)
                # after a role word, an acronym (upper case in the view) is a service or a device: "per ENT",
                # "per ICU team", "seen by CNS", "per ALINE"
                or (role and i == 0 and word.isupper() and 1 < len(word.strip(".")) <= 5)
                # a relation or role word is who, not a name ("per son", "wife, son and brother")
                or (strict and i == 0 and low in RELATION_WORDS)
                # after "per", notes cite protocols, orders and services ("per protcol", "per pej", "per ALINE"):
                # only a census name is taken here (the tagger reads the rest in context)
                or (per and i == 0 and low not in self.census)
                # a greeting is followed by a name, not an ordinary word ("hey dragon, show me")
                or (greeted and i == 0 and low in self.greeting_words and low not in self.truecaser.names and not alone)
                # after mr/ms an ordinary word must be a surname or a name ("mr fox"; not "ms flare", "MR images")
                or (titled and i == 0 and self._ordinary(word) and not surname and low not in self.truecaser.names)
            ):
                break
            # a second word is a surname when it is capitalised (as written, or by the truecaser: no ordinary word),
            # a frequent surname ("dr karen white"), or follows a known name and is no ordinary word ("dr john
            # smithers"; not "husband camila drove me in", "dr gallagher aware of")
            known = first in self.truecaser.names
            if i and not (word[:1].isupper() or surname or (known and not self._ordinary(word))):
                break
            out.append((m.start(1) + w.start(), m.start(1) + w.end()))
            first = low
        return out

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for rx, strict in (
            (_DOCTOR, False),
            (_DOCTORS_AND, True),
            (_MISTER, True),
            (_ROLE, True),
            (_RELATION, True),
            (_DIALOGUE, True),
        ):
            for m in rx.finditer(text):
                found = self._name_words(
                    text,
                    m,
                    strict,
                    relation=rx is _RELATION,
                    titled=rx is _MISTER,
                    greeted=rx is _DIALOGUE,
                    role=rx is _ROLE,
                )
                if found:
                    results.append(self._result("PERSON", found[0][0], found[-1][1]))
        for m in _ADDRESSED.finditer(text):
            group = next(g for g in (1, 2, 3) if m.group(g) is not None)
            word = m.group(group)
            # after a greeting also a word too rare to be anything but a name ("thanks cranmore")
            low = word.lower()
            rare = group == 1 and not self._common(word) and low not in self.greeting_words  # not "hey dragon"
            if not self._plain(word) and (low in self.first_names or rare):
                results.append(self._result("PERSON", m.start(group), m.end(group)))
        for m in _FACILITY.finditer(text):
            institution = self._institution(text, m)
            if institution:
                results.append(self._result("ORGANIZATION", *institution))
        for m in _SAINT.finditer(text):  # a saint's name that is a name: "st. vincent", not "st. louis" (a place)
            words = list(regex.finditer(r"\S+", m.group(1)))
            saint = words[-1].group(0)
            if self._ordinary(saint) and saint.lower() not in self.truecaser.names:
                continue
            lead = words[0].group(0).lower()
            first = words[0] if len(words) > 2 and lead not in STOP_WORDS and lead not in GENERIC else words[-2]
            results.append(self._result("ORGANIZATION", m.start(1) + first.start(), m.end(1)))
        for m in _preceded(_INTRODUCED, text):
            introduced = self._name_before(m)
            if introduced:
                results.append(self._result("PERSON", *introduced))
        for m in _preceded(_CREDENTIAL, text):  # the words before: the last one or two that look like a name
            words = list(re.finditer(r"\S+", m.group(1)))
            lead = words[0].group(0).lower()
            paired = (
                len(words) == 2
                and self._surname(words[1].group(0))
                and (not self._common(lead) or lead in self.first_names)
            )
            named = words if paired else [w for w in words if not self._plain(w.group(0))]
            # "priya stone rn", "faith little m.d." (a first name and a surname), "okafor, md"
            if named and (paired or not all(self._common(w.group(0)) for w in named)):
                results.append(self._result("PERSON", m.start(1) + named[0].start(), m.start(1) + named[-1].end()))
        for m in _UNIVERSITY.finditer(text):
            words = m.group(2).split()
            two = " ".join(words).lower()
            place = two if len(words) == 2 and (two in STATE_NAMES or two in self.truecaser.places) else words[0]
            low = place.lower()
            state = (m.group(1) is not None and low in STATE_CODES) or low in STATE_NAMES
            if state or (low in self.truecaser.places and not self._plain(words[0])):
                end = m.start(2) + (len(m.group(2)) if place is two else len(words[0]))
                results.append(self._result("ORGANIZATION", m.start(), end))
        for m in _INITIAL.finditer(text):
            surname = m.group(2)
            low = surname.lower()
            if low in NOT_AFTER_INITIAL or self._plain(surname) or len(low) < 3:
                continue
            if low in self.frequent_words or self._ordinary(surname):
                if low not in self.census:
                    continue
            elif low not in self.census and not (
                _STAFF_BEFORE.search(text, max(0, m.start() - 16), m.start()) or _STAFF_AFTER.match(text, m.end())
            ):
                continue  # "ampho b. awaiting": an unknown word after an initial needs a staff context
            results.append(self._result("PERSON", m.start(1), m.end(2)))
        for m in _SITE.finditer(text):
            word = m.group(1)
            # an abbreviation: upper case in the view (as written, or a short non-word), or no ordinary word
            if not self._plain(word) and word.lower() not in GENERIC and (word.isupper() or not self._common(word)):
                results.append(self._result("ORGANIZATION", m.start(1), m.end(1)))
        return results

    def _name_before(self, m: regex.Match[str]) -> tuple[int, int] | None:
        """The one or two words of group 1 that name someone, read from the last: the last must look like a name
        (no common word, or a frequent surname after a first name: "kayla ward"), the one before joins it when it
        looks like a name or is a first name ("julie cruz"; not "patient kayla")."""
        words = list(regex.finditer(r"\S+", m.group(1)))
        last = words[-1].group(0)
        first = words[0].group(0) if len(words) == 2 else ""
        paired = bool(first) and first.lower() in self.first_names and self._surname(last)
        if not paired and (self._common(last) or last.lower() in STOP_WORDS or last.lower() in SUBJECTS):
            return None
        start = words[-1]
        if (
            first
            and first.lower() not in SUBJECTS
            and (paired or not self._common(first) or first.lower() in self.first_names)
        ):
            start = words[0]
        return m.start(1) + start.start(), m.start(1) + words[-1].end()

    def _surname(self, word: str) -> bool:
        """A frequent census surname, ordinary words among them ("hill", "stone"): read as one after a name."""
        return word.lower().strip("'-.,") in self.surnames

    def _institution(self, text: str, m: regex.Match[str]) -> tuple[int, int] | None:
        """The institution a facility or unit word `m` ends, as (start, end), or None: the words right before it
        back to a stop or generic word, when one of them names something ("riverside general hospital", "kernan
        hosp", "calvert er", "franciscan health clinic"), or, for a facility word after at/to/from/of, when they
        are not all service words ("transferred to major hospital"; not "at pain clinic", "the er")."""
        if m.group(2) and _FACILITY_NEXT.match(text, m.end()):
            return None  # "witham health clinic": the facility word that follows ends the name
        before = _BEFORE_FACILITY.search(text, max(0, m.start() - 80), m.start())
        if before is None:
            return None
        keep: list[re.Match[str]] = []
        cued = before.group(1) is not None
        for w in reversed(list(re.finditer(r"\S+", before.group(2)))):
            low = w.group(0).lower().strip(".")
            if low in STOP_WORDS or low in GENERIC or any(c.isdigit() for c in low):
                cued = low in ("of", "in", "to", "at", "from")
                break
            keep.append(w)
        if not keep:
            return None
        named = [w for w in keep if not self._plain(w.group(0)) and w.group(0).lower() not in SERVICES]
        strong = m.group(1) is not None
        lows = [w.group(0).lower().strip(".") for w in keep]
        if not (
            (named and (strong or not all(self._ordinary(w.group(0)) for w in named)))
            or (strong and cued and not all(w in SERVICES for w in lows))
        ):
            return None
        end = m.end() if strong or m.group(2).lower() in NAMED_WITH else m.start(2)
        tail = _FACILITY_TAIL.match(text, end) if strong else None
        return before.start(2) + keep[-1].start(), tail.end() if tail else end

    def _result(self, entity: str, start: int, end: int) -> RecognizerResult:
        return local_result(self, entity, start, end, SCORE, "cue word before it, in any case")
