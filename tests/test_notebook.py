"""The consuming notebook runs end to end (as `jupyter nbconvert --execute` runs it: in notebooks/), on real shards,
with a tiny random model on the CPU: load, verify, look, score, weight, and two TRL training steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "consume_shards.ipynb"


@pytest.mark.slow
def test_notebook_executes_on_the_shards(sample_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("trl", reason="the notebook fine-tunes with TRL (pip install -e '.[train]')")
    monkeypatch.setenv("DATAKIT_SHARDS", str(sample_run / "shards"))
    monkeypatch.setenv("DATAKIT_MAX_STEPS", "2")
    monkeypatch.delenv("DATAKIT_BASE_MODEL", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    last = notebook.cells[-1]
    assert last.outputs, "the training cell printed nothing"
    text = last.outputs[-1]["data"]["text/plain"]
    loss, steps = text.strip("()").split(", ")
    assert float(loss) > 0 and int(steps) == 2
