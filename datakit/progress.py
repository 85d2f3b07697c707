"""What a person sees while a run works: one live display, or one plain line per stage when not on a terminal.

A stage reports in its own units through its context: `ctx.phase("embedding", total, "texts")` starts a step,
`ctx.advance(n)` moves it. The bar always ends at its total. Rates are shown once a step has run for a second
(the first samples of a fast step give absurd rates). Other libraries' bars and load reports are silenced for
the run unless `--debug` (`quiet_libraries`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

RATE_AFTER_S = 1.0
NOISY_LOGGERS = (
    "transformers",
    "sentence_transformers",
    "huggingface_hub",
    "datasets",
    "presidio-analyzer",
    "presidio_analyzer",
    "spacy",
    "faiss",
    "numba",
    "bm25s",
    "model2vec",
    "httpx",
)


@contextmanager
def quiet_libraries(debug: bool = False) -> Iterator[None]:
    """Silence other libraries' progress bars and INFO/WARNING chatter (their loggers and tqdm) for a run."""
    if debug:
        yield
        return
    env = {
        "TQDM_DISABLE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    }
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    saved_levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class StageProgress:
    """The progress of one stage, in the units of its current step."""

    display: RunDisplay
    stage: str
    task: TaskID | None = None
    unit: str = "rows"
    total: int | None = None
    done: int = 0
    started: float = field(default_factory=time.perf_counter)
    step_started: float = field(default_factory=time.perf_counter)

    def phase(self, step: str, total: int | None, unit: str) -> None:
        """Start a step of the stage: a new description, total and unit; the bar restarts at 0."""
        self.finish_step()
        self.unit, self.total, self.done = unit, total, 0
        self.step_started = time.perf_counter()
        self.display.update(self, description=f"{self.stage}: {step}", completed=0, total=total)

    def set_total(self, total: int) -> None:
        self.total = total
        self.display.update(self, total=total)

    def advance(self, n: int) -> None:
        self.done += n
        elapsed = time.perf_counter() - self.step_started
        rate = f"{self.done / elapsed:,.0f} {self.unit}/s" if elapsed >= RATE_AFTER_S else ""
        self.display.update(self, completed=self.done, rate=rate)

    def finish_step(self) -> None:
        """A finished step shows its total (a stage that reports fewer units than planned still ends full)."""
        if self.total is not None and self.done < self.total:
            self.done = self.total
            self.display.update(self, completed=self.total)


class RunDisplay:
    """One live display per run on a terminal; otherwise one plain line at each stage start and end."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal and not console.quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not self.live,
        )

    def __enter__(self) -> RunDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def start(self, stage: str) -> StageProgress:
        sp = StageProgress(self, stage)
        if self.live:
            sp.task = self.progress.add_task(stage, total=None, rate="")
        elif not self.console.quiet:
            self.console.print(f"{stage}: started", highlight=False)
        return sp

    def update(self, sp: StageProgress, **fields: object) -> None:
        if sp.task is None:
            return
        if "total" in fields and fields["total"] is None:  # rich's update() reads None as "leave it"
            del fields["total"]
            with self.progress._lock:
                self.progress._tasks[sp.task].total = None
        self.progress.update(sp.task, **fields)  # type: ignore[arg-type]

    def end(self, sp: StageProgress, status: str, rows_out: int | None = None) -> None:
        sp.finish_step()
        if sp.task is not None:
            self.progress.refresh()  # the finished bar is drawn before it goes
            self.progress.remove_task(sp.task)
        elif not self.console.quiet:
            seconds = time.perf_counter() - sp.started
            rows = f", {rows_out:,} rows out" if rows_out is not None else ""
            self.console.print(f"{sp.stage}: {status} in {seconds:.1f} s{rows}", highlight=False)
