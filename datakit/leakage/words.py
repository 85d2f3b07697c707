"""The `words` layer: IDF-weighted word containment of canonical texts, for edited and paraphrased copies.

Each distinct text is a set of canonical words (`canonical.canonical_text`: synonyms written one way,
boilerplate and filler removed). A word's weight is its inverse document frequency in the corpus, so the words a
report shares with thousands of others count little and the words that make it this patient's report count
most. Two texts are linked when the weight of their shared words covers at least `threshold` of the lighter
text's weight (containment: a copy with a header added, or a sentence dropped, still contains the other), and
the lighter text holds at least `min_ratio` of the heavier one's weight.

Candidate pairs come from a sparse product over the *specific* words only (document frequency at most
`max(10, specific_df × n)`): two texts become candidates when their shared specific weight covers at least
`candidate_floor` of the lighter text's specific weight; the full containment is then computed exactly. The
product runs in row chunks sized by their partial products, so memory follows one bounded chunk's pairs.
Everything is a sparse-matrix or Polars operation; no Python loop per text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from datakit.leakage.groups import connected_components
from datakit.recipe import WordsConfig

TOKEN = r"[^\s\x1f]+"
CHUNK_ROWS = 2048
PRODUCTS_PER_CHUNK = 1 << 24  # partial products of one chunk's sparse product (~0.4 GB of pairs at most)
MIN_SPECIFIC_DF = 10  # the smallest cap on a specific word's document frequency (small corpora)


def _similar(cont: np.ndarray, ratio: np.ndarray, cfg: WordsConfig) -> np.ndarray:
    """The similarity test: containment and weight ratio."""
    return (cont >= cfg.threshold) & (ratio >= cfg.min_ratio)


def _enough_specific(shared: np.ndarray, total_a: np.ndarray, total_b: np.ndarray, floor: float) -> np.ndarray:
    """The candidate rule: the pair shares at least `floor` of the lighter text's specific weight."""
    lo = np.minimum(total_a, total_b)
    return (lo > 0) & (shared >= floor * lo - 1e-6)


@dataclass
class WordIndex:
    """Binary word sets of the texts (rows = content ids), weighted by IDF; `specific` keeps only the words of
    document frequency at most `max(10, specific_df × n)`."""

    weights: sp.csr_matrix  # sqrt(idf) per present word: row·row = shared IDF weight
    totals: np.ndarray  # IDF weight of each text's word set
    specific: sp.csr_matrix  # the same, specific words only
    specific_totals: np.ndarray

    def _shared(self, matrix: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row·row of each pair (a[i], b[i]): the shared weight of two word sets."""
        from datakit.leakage.pair_dots import row_pair_dots  # numba on first use: the CLI stays light

        return row_pair_dots(matrix, a, b)

    def containment(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(containment of the lighter text in the heavier, weight ratio lighter/heavier) of pairs (a[i], b[i])."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        if len(a) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        inter = self._shared(self.weights, a, b)
        lo = np.minimum(self.totals[a], self.totals[b])
        hi = np.maximum(self.totals[a], self.totals[b])
        cont = np.where(lo > 0, inter / np.maximum(lo, 1e-9), 0.0)
        return np.round(np.minimum(cont, 1.0), 5).astype(np.float32), (lo / np.maximum(hi, 1e-9)).astype(np.float32)

    def is_candidate(self, a: np.ndarray, b: np.ndarray, floor: float) -> np.ndarray:
        """Pairs sharing at least `floor` of the lighter text's specific weight (the candidate rule)."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        if len(a) == 0:
            return np.zeros(0, dtype=bool)
        shared = self._shared(self.specific, a, b)
        return _enough_specific(shared, self.specific_totals[a], self.specific_totals[b], floor)

    def linked(self, a: np.ndarray, b: np.ndarray, cfg: WordsConfig) -> tuple[np.ndarray, np.ndarray]:
        """(linked, containment) of pairs (a[i], b[i]): detection's and the certificate's definition (the
        similarity test and the candidate rule)."""
        cont, ratio = self.containment(a, b)
        ok = _similar(cont, ratio, cfg) & self.is_candidate(a, b, cfg.candidate_floor)
        return ok, cont


def build_index(texts: pl.Series, specific_df: float) -> WordIndex:
    """The word index of canonical texts (one row per text, in order)."""
    n = len(texts)
    tokens = (
        pl.DataFrame({"t": texts})
        .with_row_index("doc")
        .select("doc", pl.col("t").fill_null("").str.extract_all(TOKEN).alias("w"))
        .explode("w")
        .drop_nulls("w")
        .unique(["doc", "w"])
    )
    vocab = tokens.select(pl.col("w").unique().sort()).with_row_index("tid")
    ids = tokens.join(vocab, on="w")
    rows = ids["doc"].cast(pl.Int64).to_numpy()
    cols = ids["tid"].cast(pl.Int64).to_numpy()
    binary = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, vocab.height))
    df = np.asarray(binary.sum(axis=0)).ravel()
    idf = (np.log((n + 1) / (df + 1)) + 1).astype(np.float32)
    weights = binary.multiply(np.sqrt(idf)).tocsr().astype(np.float32)
    totals = np.asarray(binary.multiply(idf).sum(axis=1)).ravel().astype(np.float32)
    keep = np.flatnonzero(df <= max(MIN_SPECIFIC_DF, int(specific_df * n)))
    specific = weights[:, keep].tocsr()
    specific_totals = np.asarray(specific.multiply(specific).sum(axis=1)).ravel().astype(np.float32)
    return WordIndex(
        weights=weights,
        totals=totals,
        specific=specific,
        specific_totals=specific_totals,
    )


def candidate_chunks(
    index: WordIndex,
    floor: float,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pl.DataFrame]:
    """Candidate pairs (a from `rows`, b from `cols`; both default to every text, and then a < b), a chunk of
    rows at a time: every pair that passes `WordIndex.is_candidate` (complete: an exact sparse product)."""
    n = index.specific.shape[0]
    within = rows is None and cols is None
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    cols = np.arange(n, dtype=np.int64) if cols is None else np.asarray(cols, np.int64)
    transposed = index.specific[cols].T.tocsr()
    tot = index.specific_totals
    for start, stop in _row_chunks(index.specific[rows], np.diff(transposed.indptr), chunk_rows):
        ids = rows[start:stop]
        block = (index.specific[ids] @ transposed).tocoo()
        a = ids[block.row]
        b = cols[block.col]
        v = block.data
        keep = (b > a) if within else (a != b)
        a, b, v = a[keep], b[keep], v[keep]
        ok = _enough_specific(v, tot[a], tot[b], floor)
        yield pl.DataFrame({"a": a[ok].astype(np.uint32), "b": b[ok].astype(np.uint32)})


def _row_chunks(rows: sp.csr_matrix, col_df: np.ndarray, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """(start, stop) row ranges whose sparse product holds at most `PRODUCTS_PER_CHUNK` partial products (a row's
    count is the document frequency, among the columns, of each of its words) and at most `chunk_rows` rows: a
    chunk of rows full of moderately common words makes tens of millions of candidate pairs, and memory follows
    the largest chunk. The same pairs whatever the chunks."""
    products = col_df[rows.indices].astype(np.int64)
    per_row = np.zeros(rows.shape[0], dtype=np.int64)
    nonempty = np.diff(rows.indptr) > 0
    if products.size:
        per_row[nonempty] = np.add.reduceat(products, rows.indptr[:-1][nonempty])
    total = np.cumsum(per_row)
    start = 0
    while start < rows.shape[0]:
        before = total[start - 1] if start else 0
        stop = int(np.searchsorted(total, before + PRODUCTS_PER_CHUNK, side="right"))
        stop = min(max(stop, start + 1), start + chunk_rows, rows.shape[0])
        yield start, stop
        start = stop


def linked_pairs(
    index: WordIndex,
    cfg: WordsConfig,
    floor: float,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
) -> pl.DataFrame:
    """(a, b, containment, linked) for candidate pairs whose containment is at least `floor` (kept for the
    report's what-if thresholds) or that are linked."""
    parts = []
    for cand in candidate_chunks(index, cfg.candidate_floor, rows, cols):
        if cand.height == 0:
            continue
        cont, ratio = index.containment(cand["a"].to_numpy(), cand["b"].to_numpy())
        linked = _similar(cont, ratio, cfg)
        scored = cand.with_columns(pl.Series("containment", cont), pl.Series("linked", linked))
        parts.append(scored.filter((pl.col("containment") >= floor) | pl.col("linked")))
    if not parts:
        return pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32, "containment": pl.Float32, "linked": pl.Boolean})
    return pl.concat(parts).sort("a", "b")


PAIR_ROWS = 1 << 22  # directed link rows ranked / joined at a time (a text's rows stay in one chunk)


def _a_ranges(a: np.ndarray, rows: int) -> Iterator[tuple[int, int]]:
    """Over `a` sorted ascending: (start, stop) row ranges of at most ~`rows` rows that never split one value of
    `a` (a text's links are ranked and counted together)."""
    start = 0
    while start < len(a):
        stop = min(start + rows, len(a))
        if stop < len(a):  # move the cut to the end of the text it falls in
            stop = int(np.searchsorted(a, a[stop - 1], side="right"))
        yield start, stop
        start = stop


def _directed(pairs: pl.DataFrame, *extra: str) -> pl.DataFrame:
    """Both directions of each pair (a, b, `extra`..., pair: the pair's row, dir: 0 as given, 1 reversed), by a."""
    forward = pairs.select("a", "b", *extra, pl.int_range(pl.len(), dtype=pl.UInt32).alias("pair"))
    backward = forward.select(pl.col("b").alias("a"), pl.col("a").alias("b"), *extra, "pair")
    return pl.concat(
        [
            forward.with_columns(pl.lit(0, pl.UInt8).alias("dir")),
            backward.with_columns(pl.lit(1, pl.UInt8).alias("dir")),
        ]
    ).sort("a", maintain_order=True)


def mutual_top(pairs: pl.DataFrame, k: int) -> pl.Series:
    """For linked pairs (a, b, containment): whether each is among the other's `k` most similar linked texts
    (containment descending; texts at equal containment, to 3 decimals, share a rank). A copy and its original
    are each other's closest text; a chain of look-alike reports written for different patients is not, so only
    mutual links bind (the rest are reported as `template_words`). Ranked a few million directed links at a time
    (a text's together): 12.5M links of 113K sample cases took 1 GB ranked at once."""
    if pairs.height == 0:
        return pl.Series("mutual", [], dtype=pl.Boolean)
    both = _directed(pairs.with_columns(pl.col("containment").round(3).alias("c3")), "c3")
    ranks = np.zeros((2, pairs.height), dtype=np.int64)
    a = both["a"].to_numpy()
    for start, stop in _a_ranges(a, PAIR_ROWS):
        chunk = both.slice(start, stop - start)
        rank = chunk.select(pl.col("c3").rank("dense", descending=True).over("a").sub(1)).to_series().to_numpy()
        ranks[chunk["dir"].to_numpy(), chunk["pair"].to_numpy()] = rank
    return pl.Series("mutual", ranks.max(axis=0) < k)


def crowded(n_texts: int, pairs: pl.DataFrame, patients: pl.DataFrame, min_patients: int) -> np.ndarray:
    """Per text: whether the texts it is directly linked to (`pairs`: a, b), with itself, were written for at
    least `min_patients` distinct patients (`patients`: content, patient; a record without a patient counts as
    its own). Such a text is look-alike boilerplate: a link to it says nothing about one patient. The test looks
    at a text's own neighbours, not at the chain its links form. Counted a few million links at a time (a text's
    together): joining 12.5M links to their patients at once took 2.8 GB."""
    out = np.zeros(n_texts, dtype=bool)
    if min_patients == 0 or n_texts == 0 or pairs.height == 0:
        return out
    per_text = patients.unique().group_by("content").head(min_patients)
    ab = pairs.select(pl.col("a").cast(pl.UInt32), pl.col("b").cast(pl.UInt32))
    own = pl.DataFrame({"a": pl.arange(0, n_texts, dtype=pl.UInt32, eager=True)}).with_columns(pl.col("a").alias("b"))
    both = pl.concat([ab, ab.select(pl.col("b").alias("a"), pl.col("a").alias("b")), own]).sort("a")
    a = both["a"].to_numpy()
    for start, stop in _a_ranges(a, PAIR_ROWS):
        reach = (
            both.slice(start, stop - start)
            .unique()
            .join(per_text.rename({"content": "b"}), on="b")
            .group_by("a")
            .agg(pl.col("patient").n_unique().alias("patients"))
            .filter(pl.col("patients") >= min_patients)
        )
        out[reach["a"].to_numpy()] = True
    return out


def detect_links(
    index: WordIndex, cfg: WordsConfig, patients: pl.DataFrame, min_patients: int, floor: float
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """(scored, binding, busy): every candidate pair with its containment at or above `floor` or linked
    (`scored`: a, b, containment, linked); the linked pairs that group records (`binding`: a, b, containment):
    mutual (`mutual_top`), touching no look-alike text, in a family of at most `max_family` texts; and per text
    whether it is a look-alike (`busy`: crowded, see `crowded`; without any specific word; or in a longer run of
    mutual links, a chain of look-alikes rather than a report and its copies)."""
    scored = linked_pairs(index, cfg, floor)
    linked = scored.filter(pl.col("linked"))
    n = index.weights.shape[0]
    # a text with no specific word at all is boilerplate whatever its neighbours
    busy = crowded(n, linked, patients, min_patients) | (index.specific_totals <= 0)
    lone = ~pl.Series(busy[linked["a"].to_numpy()] | busy[linked["b"].to_numpy()])
    mutual = linked.filter(mutual_top(linked, cfg.mutual_top) & lone)
    # a copy family is a report and a few copies; a longer run of mutual links is a chain of look-alikes
    family = connected_components(n, mutual).rename({"node": "a"})
    sizes = family.group_by("component").agg(pl.len().alias("size"))
    big = family.join(sizes, on="component").filter(pl.col("size") > cfg.max_family)["a"].to_numpy()
    chained = np.zeros(n, dtype=bool)
    chained[big] = True
    busy = busy | chained
    binding = mutual.filter(~pl.Series(chained[mutual["a"].to_numpy()])).select("a", "b", "containment")
    return scored, binding, busy
