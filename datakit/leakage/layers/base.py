"""What a leakage layer is: one object that answers the three questions every caller asks of it.

- `within(corpus)`: which records of one corpus does it link (detection, which groups records);
- `across(corpus, sides)`: which eval records does it link to a train record, by a complete search (the
  certificate, which fails the build on any it finds);
- `blocks(corpus, pairs)`: may this query record see this candidate as a few-shot example (the retrieval guard).

`prepare(corpus)` computes what the layer needs (signatures, vectors, a word index) once; all three questions
read it. A layer that cannot run raises: `LayerClock.layer` turns the error into a `StageError` naming the layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from datakit.errors import DatakitError, StageError
from datakit.leakage.corpus import Corpus
from datakit.memory import release
from datakit.runner import PeakRss

EDGE_SCHEMA = {"a": pl.UInt32, "b": pl.UInt32, "kind": pl.String, "score": pl.Float32}


def no_edges() -> pl.DataFrame:
    return pl.DataFrame(schema=EDGE_SCHEMA)


@dataclass
class LayerClock:
    """Wall time and peak RSS per layer, for `_stage.json` and the bench."""

    layers: dict[str, dict[str, float]] = field(default_factory=dict)
    # progress in each layer's own units (the stage context's phase/advance; no-ops in tests and the bench)
    phase: Callable[[str, int | None, str], None] = lambda step, total, unit: None
    advance: Callable[[int], None] = lambda n: None

    @contextmanager
    def layer(self, name: str) -> Any:
        t0 = time.perf_counter()
        with PeakRss() as rss:
            try:
                yield
            except DatakitError:
                raise
            except Exception as err:  # no layer passes data through: stop, naming the layer (never the text)
                raise StageError(f"leakage layer '{name}' could not run: {type(err).__name__}") from err
        release()  # what the layer freed goes back to the OS: the next layer's peak is its own
        self.layers[name] = {"seconds": round(time.perf_counter() - t0, 3), "peak_rss_mb": round(rss.peak / 2**20, 1)}


@dataclass
class Found:
    """A layer's links within one corpus."""

    edges: pl.DataFrame  # a, b (nodes), kind, score: links that group records (unless the template rule exempts
    # them, for layers with `exempt_templates`)
    loose: pl.DataFrame | None = None  # links the layer's own rule keeps from grouping: reported only
    linked_contents: pl.DataFrame | None = None  # content pairs a, b it links (the template rule's clusters)
    scores: pl.DataFrame | None = None  # content pairs a, b, <score column>, down to the report floor
    look_alike: np.ndarray | None = None  # per content: a text this layer found crowded by other patients'


@dataclass
class Sides:
    """One split assignment as the certificate's layers read it: each node's side, and a representative node of
    each content on each side."""

    nodes: pl.DataFrame  # node, content, side (train / eval), template, the key columns
    train: pl.DataFrame  # content (UInt32), rep: train-side contents, sorted
    eval: pl.DataFrame
    template: np.ndarray  # per content: part of a template cluster
    look_alike: np.ndarray  # per content: a template, or a text the words layer found crowded
    alone: np.ndarray  # per content: one case, which no metadata link (patient, accession, exam) touches

    @property
    def train_ids(self) -> np.ndarray:
        return self.train["content"].to_numpy()

    @property
    def eval_ids(self) -> np.ndarray:
        return self.eval["content"].to_numpy()


@dataclass
class Cross:
    """A layer's train↔eval links (eval node a, train node b) that fail the certificate, and its entry there."""

    edges: pl.DataFrame
    entry: dict[str, Any]


@dataclass
class Pairs:
    """(query node, candidate node) pairs the guard decides on, with their contents."""

    query: np.ndarray
    candidate: np.ndarray
    qc: np.ndarray
    cc: np.ndarray
    # (containment, ratio) of the pairs' canonical words, when the caller computed them already
    words_scores: tuple[np.ndarray, np.ndarray] | None = None


class Layer:
    """Base of every leakage layer (see the module docstring)."""

    name: str
    family: Literal["text", "metadata"] = "text"
    # links touching a template text group nothing and do not fail the certificate (counted as exempt)
    exempt_templates: bool = True
    # the layer's links draw the clusters the template rule counts patients in
    defines_templates: ClassVar[bool] = False

    def prepare(self, corpus: Corpus, clock: LayerClock) -> None:
        """Compute what the three questions read (no-op for key layers)."""

    def exempted(self, edges: pl.DataFrame, template: pl.Series, look_alike: pl.Series) -> pl.Series:
        """Which of this layer's links (node pairs a, b) are template links once every layer has run: those touching
        a template text, for layers with `exempt_templates`. Like `binds_only_alone` links they group lone records
        only. `template` and `look_alike` are indexed by node."""
        if not self.exempt_templates or edges.height == 0:
            return pl.repeat(False, edges.height, eager=True)
        return template.gather(edges["a"]) | template.gather(edges["b"])

    def binds_only_alone(self, edges: pl.DataFrame, look_alike: pl.Series) -> pl.Series:
        """Which of this layer's links group records only when neither record has a binding metadata link (no other
        exam of its patient, no shared accession): weak evidence that must not join one patient's history to
        another's. None by default."""
        return pl.repeat(False, edges.height, eager=True)

    def within(self, corpus: Corpus, clock: LayerClock) -> Found:
        raise NotImplementedError

    def across(self, corpus: Corpus, sides: Sides) -> Cross:
        raise NotImplementedError

    def blocks(self, corpus: Corpus, pairs: Pairs) -> np.ndarray:
        raise NotImplementedError


def exempt(template: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Content pairs touching a flagged (template, look-alike) text."""
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    return template[a] | template[b]


def lone_pair(sides: Sides, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Content pairs whose texts are both lone records' (no metadata link): their template links bind."""
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    return sides.alone[a] & sides.alone[b]
