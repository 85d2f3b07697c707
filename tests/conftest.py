from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from rich.console import Console

from datakit.pipeline import run_pipeline
from datakit.recipe import Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_DATA = SHARED / "real_data"
CODING_RECIPE = ROOT / "recipes" / "radiology-coding.toml"
IMPRESSION_RECIPE = ROOT / "recipes" / "radiology-impression.toml"


def quiet() -> Console:
    return Console(quiet=True)


def coding_recipe(*overrides: str) -> Recipe:
    return load_recipe(CODING_RECIPE, list(overrides))


def run_recipe(recipe: Recipe, out: Path, **kwargs: object) -> list:
    return run_pipeline(recipe, out, quiet(), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "indiana_iu_cxr" / "indiana_reports.csv").is_file():
        pytest.skip(f"real data not found at {REAL_DATA} (../shared is absent)")
    return REAL_DATA


# The shared sample run keeps the sample's synthetic case ids as written (the default keys them), so tests can join
# the generator's truth tables on them; tests/deid/test_columns.py covers the default.
SAMPLE_RUN = ("source.n=1200", 'deid.keep_columns=["case_id"]')


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small end-to-end run of the flagship recipe, shared by read-only tests."""
    out = tmp_path_factory.mktemp("sample_run")
    run_recipe(coding_recipe(*SAMPLE_RUN), out)
    return out


@pytest.fixture(scope="session")
def iu_impression_run(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The impression recipe on the real IU reports (public data: the demo key is allowed), shared read-only."""
    out = tmp_path_factory.mktemp("iu_impression")
    # recipe paths are relative to the working directory: the source path is made absolute here
    source = f"source.path={(ROOT / str(load_recipe(IMPRESSION_RECIPE).source.path)).resolve()}"
    run_recipe(load_recipe(IMPRESSION_RECIPE, ["keys.allow_demo_for_real_data=true", source]), out)
    return out
