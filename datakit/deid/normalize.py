"""The normalised view detection reads: invisible and look-alike characters folded, offsets kept.

PHI must not slip past in characters a reader does not see or that look like others: a soft hyphen, a zero-width
space, a NUL or a bidi mark inside a name ("Zeb\\u00adulon"), fullwidth digits in a phone number, a no-break space
between first and last name. `view(text)` returns the text every detector reads, built per grapheme cluster:

- format characters (Unicode category Cf: soft hyphen, zero-width space/joiners, word joiner, bidi controls, BOM,
  tag characters), control characters (Cc, but tab, line feed and carriage return) and variation selectors are
  removed;
- line and paragraph separators (U+2028/2029) become line feeds;
- everything else is NFKC-folded (fullwidth digits and letters, no-break and other spaces, ligatures,
  superscripts), so `０３/１２/２０２４` reads as `03/12/2024`.

Each character of the view knows the span of the original it came from (`View.original`), so a detection on the
view replaces the right characters of the original, invisible ones inside it included. Text that needs none of
this (nearly all) is its own view at no cost beyond one scan.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import regex

_DROP = regex.compile(r"[\p{Cf}\p{Cc}\uFE00-\uFE0F--[\t\n\r]]", regex.V1)
_LINE = regex.compile(r"[\u2028\u2029]")
_NEEDS_WORK = regex.compile(r"[\p{Cf}\p{Cc}\p{Zl}\p{Zp}\uFE00-\uFE0F--[\t\n\r]]", regex.V1)
_CLUSTER = regex.compile(r"\X")


@dataclass(frozen=True)
class View:
    text: str
    # per character of `text`: where its grapheme cluster starts and ends in the original; None: the identity
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original's (start, end) for the view's [start, end) (a non-empty span)."""
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            at = self.starts[start] if start < len(self.starts) else (self.ends[-1] if self.ends else 0)
            return at, at
        return self.starts[start], self.ends[end - 1]


def needs_view(text: str) -> bool:
    """Whether `text` holds a character the view changes."""
    if text.isascii():
        return _NEEDS_WORK.search(text) is not None
    return _NEEDS_WORK.search(text) is not None or not unicodedata.is_normalized("NFKC", text)


def view(text: str) -> View:
    """The normalised view of `text` (see the module's docstring)."""
    if not needs_view(text):
        return View(text)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for m in _CLUSTER.finditer(text):
        cluster = _LINE.sub("\n", _DROP.sub("", m.group(0)))
        folded = unicodedata.normalize("NFKC", cluster) if cluster else ""
        folded = _DROP.sub("", folded)
        out.append(folded)
        starts += [m.start()] * len(folded)
        ends += [m.end()] * len(folded)
    return View("".join(out), tuple(starts), tuple(ends))


def fold(text: str) -> str:
    """The view's text alone (for scans and checks that only count)."""
    return view(text).text if needs_view(text) else text
