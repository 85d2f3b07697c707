"""What a person sees while a run works: bars in the stage's own units that end at their total, rates only once
a step has run a second, plain lines off a terminal, other libraries silenced."""

from __future__ import annotations

import io
import logging
import os

from rich.console import Console

from datakit import progress as progress_mod
from datakit.progress import RunDisplay, quiet_libraries


def _display(terminal: bool) -> tuple[RunDisplay, io.StringIO]:
    buffer = io.StringIO()
    return RunDisplay(Console(file=buffer, force_terminal=terminal, width=120)), buffer


def test_a_step_ends_at_its_total_and_shows_no_rate_in_its_first_second() -> None:
    display, _ = _display(terminal=True)
    with display:
        sp = display.start("leakage")
        sp.phase("LSH bands", 32, "bands")
        sp.advance(4)
        task = display.progress.tasks[0]
        assert task.description == "leakage: LSH bands" and task.completed == 4 and task.total == 32
        assert task.fields["rate"] == ""  # the first samples of a fast step would read millions/s
        sp.step_started -= progress_mod.RATE_AFTER_S  # as if a second had passed
        sp.advance(4)
        assert display.progress.tasks[0].fields["rate"].endswith("bands/s")
        sp.phase("embedding", 100, "texts")  # the previous step is shown finished first
        assert sp.done == 0 and display.progress.tasks[0].total == 100
        sp.advance(60)
        sp.finish_step()
        assert display.progress.tasks[0].completed == 100
        sp.phase("certificate", None, "rounds")  # an open-ended step does not inherit the last total
        assert display.progress.tasks[0].total is None
        display.end(sp, "done", 100)
        assert not display.progress.tasks


def test_off_a_terminal_one_plain_line_per_stage_start_and_end() -> None:
    display, buffer = _display(terminal=False)
    with display:
        sp = display.start("deid")
        sp.phase("de-identifying", 10, "records")
        sp.advance(10)
        display.end(sp, "done", 10)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "deid: started"
    assert lines[1].startswith("deid: done in ") and lines[1].endswith("10 rows out")
    assert len(lines) == 2


def test_other_libraries_are_silenced_for_the_run_and_restored_after() -> None:
    logger = logging.getLogger("transformers")
    logger.setLevel(logging.INFO)
    before = os.environ.get("TQDM_DISABLE")
    with quiet_libraries():
        assert logger.level == logging.ERROR and os.environ["TQDM_DISABLE"] == "1"
    assert logger.level == logging.INFO and os.environ.get("TQDM_DISABLE") == before
    with quiet_libraries(debug=True):
        assert logger.level == logging.INFO
