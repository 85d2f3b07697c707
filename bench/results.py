"""Where benchmarks leave their figures: `bench/results/<name>.json` (with `--save`), which `docs/gen.py` renders
into the docs site's benchmarks page, so no figure there is typed by hand. Each file says when, on what machine
and at which commit it was measured."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=RESULTS.parent, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def save(name: str, figures: dict[str, Any], command: str) -> Path:
    """Write one benchmark's figures, with the command that reproduces them."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {
        "benchmark": name,
        "command": command,
        "measured_on": dt.date.today().isoformat(),
        "commit": _commit(),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "system": platform.system()},
        "figures": figures,
    }
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    print(f"saved {path.relative_to(RESULTS.parent.parent)}")
    return path
