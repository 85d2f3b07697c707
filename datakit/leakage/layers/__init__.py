"""The leakage layers, in one list: detection, the certificate, the retrieval guard and the reports all iterate
`make_layers`, so a new layer is added here and nowhere else (see `base.Layer` for what a layer answers).

Text layers compare what records say: `exact` (normalised text hash), `near` (MinHash), `cosine` (embeddings),
`words` (IDF-weighted canonical words). Metadata layers compare keyed identifiers: `exam_fingerprint`
(patient, exam date, CPT set), `accession`, `patient`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import TypeVar

from datakit.executor import Executor
from datakit.leakage import embed
from datakit.leakage.fingerprint import METADATA_LAYERS
from datakit.leakage.layers.base import Cross, Found, Layer, LayerClock, Pairs, Sides
from datakit.leakage.layers.cosine import CosineLayer
from datakit.leakage.layers.keys import KeyLayer, dense_ids
from datakit.leakage.layers.near import NearLayer
from datakit.leakage.layers.words import WordsLayer
from datakit.recipe import Leakage

__all__ = [
    "Cross",
    "Found",
    "Layer",
    "LayerClock",
    "Pairs",
    "Sides",
    "dense_ids",
    "layer_names",
    "layer_of",
    "make_layers",
]


def make_layers(
    cfg: Leakage,
    encoder_factory: Callable[[Leakage], embed.Encoder] | None = None,
    executor: Executor | None = None,
) -> list[Layer]:
    """Fresh layer objects for one corpus, text layers first (the order reports and guard columns use). The near
    and cosine layers compute their signatures, vectors and candidate pairs where `executor` runs its batches
    (this process when none is given)."""
    return [
        KeyLayer("exact", "dedup_hash", family="text", exempt_templates=True),
        NearLayer(cfg.minhash, executor),
        CosineLayer(cfg, encoder_factory, executor),
        WordsLayer(cfg),
        *[KeyLayer(name, column, "metadata", exempt_templates=False) for name, column in METADATA_LAYERS.items()],
    ]


L = TypeVar("L", bound=Layer)


def layer_of(layers: Sequence[Layer], kind: type[L]) -> L:
    """The layer of class `kind` among prepared `layers` (detection's, the guard's)."""
    return next(layer for layer in layers if isinstance(layer, kind))


@cache
def layer_names(family: str | None = None) -> tuple[str, ...]:
    """The layers' names (of one family: "text" or "metadata"), in `make_layers` order."""
    return tuple(layer.name for layer in make_layers(Leakage()) if family in (None, layer.family))
