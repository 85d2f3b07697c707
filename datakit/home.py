"""datakit's per-user folder for things derived from installed packages: `$DATAKIT_HOME`, default
`~/.cache/datakit` (distilled static embedding models under `models/`, word lists under `words/`)."""

from __future__ import annotations

import os
from pathlib import Path


def datakit_home() -> Path:
    return Path(os.environ.get("DATAKIT_HOME", Path.home() / ".cache" / "datakit"))
