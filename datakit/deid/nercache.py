"""NER over many short texts, each distinct text read once: radiology reports repeat their template lines
("The lungs are clear.", "No acute fracture."), and so do the windows and lines NER is given. The entities a
spaCy pipeline finds in a text depend on that text alone, so a text seen before gets the entities found then:
the same outputs, fewer NER passes. Only (start, end, label) tuples are kept, never Doc objects; the cache is
bounded (cleared when full) and lives in one worker process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Entity = tuple[int, int, str]  # (start char, end char, spaCy label)
MAX_TEXTS = 200_000  # distinct texts remembered per pipeline (a few tens of MB at line length)


class NerCache:
    def __init__(self, nlp: Any, batch_size: int = 256, max_texts: int = MAX_TEXTS) -> None:
        self.nlp = nlp
        self.batch_size = batch_size
        self.max_texts = max_texts
        self._seen: dict[str, tuple[Entity, ...]] = {}
        self.hits = 0
        self.misses = 0

    def entities(self, texts: Iterable[str], batch_size: int | None = None) -> list[tuple[Entity, ...]]:
        """The entities of each text, in order; texts not seen before go through the pipeline once each."""
        texts = list(texts)
        new = list(dict.fromkeys(t for t in texts if t not in self._seen))
        self.misses += len(new)
        self.hits += len(texts) - len(new)
        if len(self._seen) + len(new) > self.max_texts:
            self._seen.clear()  # a corpus of that many distinct lines repeats little: start again
        found = {
            text: tuple((e.start_char, e.end_char, e.label_) for e in doc.ents)
            for text, doc in zip(new, self.nlp.pipe(new, batch_size=batch_size or self.batch_size), strict=True)
        }
        self._seen.update(found)
        return [found[t] if t in found else self._seen[t] for t in texts]
