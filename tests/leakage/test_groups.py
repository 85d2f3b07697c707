from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from datakit.leakage.groups import connected_components, key_links


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.lists(st.tuples(st.integers(0, 199), st.integers(0, 199)), max_size=300))
def test_components_match_scipy(n: int, raw: list[tuple[int, int]]) -> None:
    pairs = [(a % n, b % n) for a, b in raw]
    edges = pl.DataFrame(
        {"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]}, schema={"a": pl.UInt32, "b": pl.UInt32}
    )
    ours = connected_components(n, edges)["component"].to_numpy()
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    _, labels = scipy_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    # same partition, and each component is named by its smallest node
    assert len(set(zip(ours, labels, strict=True))) == len(set(labels)) == len(set(ours))
    for node, comp in enumerate(ours):
        assert comp <= node and ours[comp] == comp


def test_long_chain_converges() -> None:
    n = 50_000
    edges = pl.DataFrame({"a": np.arange(n - 1, dtype=np.uint32), "b": np.arange(1, n, dtype=np.uint32)})
    assert set(connected_components(n, edges)["component"]) == {0}


def test_key_links_are_stars() -> None:
    nodes = pl.DataFrame({"node": [0, 1, 2, 3, 4], "k": ["x", "x", "x", None, "y"]})
    links = key_links(nodes, "k", "exact")
    assert sorted(links.select("a", "b").iter_rows()) == [(0, 1), (0, 2)]
