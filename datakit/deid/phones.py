"""Phone numbers in every shape a region writes them, by Google's libphonenumber (the `phonenumbers` package that
presidio's own PhoneRecognizer uses): national and international formats, extensions, odd separators
("201/324/1423", "212- 476- 8356", "+44 20 7946 0958", "410 392 0780 x45").

A number is taken only when libphonenumber calls it *valid* for one of `deid.phone_regions` (or, written with a
country code, for its own country): blood pressures, ventilator settings, lab values and dates are not. The
matcher is costly, so it reads only digit runs that could hold a number (seven digits or more within a short
stretch of digits and separators), never the whole text. Pagers, beepers and local seven-digit numbers after a
phone word are the pattern recognizer's (`PhoneFaxRecognizer` in `recognizers.py`).
"""

from __future__ import annotations

import phonenumbers
import regex
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from datakit.deid.recognizers import local_result

NAME = "PhoneNumberRecognizer"
DEFAULT_REGIONS = ("US", "GB")  # numbers written with a country code (+49 …, 0033 …) are found whatever the regions
SCORE = 0.75
# a run of digits and separators with an optional country prefix and extension: where a number could be
_CANDIDATE = regex.compile(
    r"(?<![\w.])(?:\+|00)?\(?\d[\d \t().\-/]{5,22}\d(?:[ \t]*(?i:x|ext\.?|extension)[ \t]*\d{1,6})?(?![\w])"
)

_DECIMAL = regex.compile(r"\d\.\d{1,2}(?!\d)")


class PhoneNumberRecognizer(LocalRecognizer):
    """presidio recognizer: libphonenumber's valid numbers for the given regions, found in candidate digit runs."""

    def __init__(self, regions: tuple[str, ...] = DEFAULT_REGIONS) -> None:
        self.regions = tuple(regions)
        super().__init__(supported_entities=["PHONE_NUMBER"], name=NAME, supported_language="en")

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        found: dict[tuple[int, int], RecognizerResult] = {}
        for m in _CANDIDATE.finditer(text):
            window = m.group(0)
            if sum(c.isdigit() for c in window) < 7 or _DECIMAL.search(window):
                continue  # too short for a number, or a lab value / blood gas ("128/30/7.52")
            for region in self.regions:
                for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID):
                    start, end = m.start() + match.start, m.start() + match.end
                    if (start, end) not in found:
                        found[(start, end)] = local_result(
                            self, "PHONE_NUMBER", start, end, SCORE, f"valid phone number ({region})"
                        )
        return list(found.values())


def fingerprint(regions: tuple[str, ...]) -> dict[str, object]:
    """What the audit and the config hash record of this recognizer."""
    return {"name": NAME, "regions": list(regions), "phonenumbers": phonenumbers.__version__, "score": SCORE}
