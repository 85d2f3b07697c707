from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datakit.errors import StageError
from datakit.leakage.groups import components_fit, connected_components, key_links


def _union_find(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    """A reference: each node's smallest connected node, by a plain union-find."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [root(x) for x in range(n)]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.lists(st.tuples(st.integers(0, 199), st.integers(0, 199)), max_size=300))
def test_components_match_a_union_find(n: int, raw: list[tuple[int, int]]) -> None:
    pairs = [(a % n, b % n) for a, b in raw]
    edges = pl.DataFrame(
        {"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]}, schema={"a": pl.UInt32, "b": pl.UInt32}
    )
    # same partition, each component named by its smallest node
    assert connected_components(n, edges)["component"].to_list() == _union_find(n, pairs)


def test_repeated_links_are_still_links() -> None:
    # 256 copies of one link: summed weights must not wrap around to "no edge"
    edges = pl.DataFrame({"a": [3] * 256, "b": [1] * 256}, schema={"a": pl.UInt32, "b": pl.UInt32})
    assert connected_components(4, edges)["component"].to_list() == [0, 1, 2, 1]


def test_a_graph_past_the_drivers_memory_stops_with_the_sizes() -> None:
    with pytest.raises(StageError, match=r"1,000,000,000 links over 10,000,000 records need ~3[0-9.]+ GiB"):
        components_fit(10_000_000, 1_000_000_000, available=8 * 2**30)
    components_fit(10_000_000, 10_000_000, available=8 * 2**30)  # fits: no error


def test_long_chain_converges() -> None:
    n = 50_000
    edges = pl.DataFrame({"a": np.arange(n - 1, dtype=np.uint32), "b": np.arange(1, n, dtype=np.uint32)})
    assert set(connected_components(n, edges)["component"]) == {0}


def test_key_links_are_stars() -> None:
    nodes = pl.DataFrame({"node": [0, 1, 2, 3, 4], "k": ["x", "x", "x", None, "y"]})
    links = key_links(nodes, "k", "exact")
    assert sorted(links.select("a", "b").iter_rows()) == [(0, 1), (0, 2)]
