"""Leakage groups at scale: connected components of a synthetic link graph on the driver, and the memory bound.

    python bench/components.py --nodes 4000000 --edges 8000000
    python bench/components.py --nodes 20000000 --edges 40000000 --baseline-max 0

The graph imitates what the layers link: each edge joins a node to one of its next 50 (chains of copies and kNN
neighbours, many small components). Prints time and peak RSS of `groups.connected_components` (SciPy's sparse
graph), the estimate `groups.components_fit` checks against the driver's memory, and, up to --baseline-max edges,
the Polars min-label propagation it replaced, measured in the same run on the same graph (same components).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import sys, time, resource, numpy as np, polars as pl
from datakit.leakage import groups
n, e, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
a = rng.integers(0, n, e, dtype=np.uint32)
b = np.minimum(n - 1, a + rng.integers(1, 50, e).astype(np.uint32))
edges = pl.DataFrame({"a": a, "b": b})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if which == "scipy":
    comps = groups.connected_components(n, edges)
else:  # the min-label propagation with pointer jumping groups.py used before
    nodes = pl.arange(0, n, dtype=pl.UInt32, eager=True)
    labels = pl.DataFrame({"node": nodes, "label": nodes})
    both = pl.concat([edges, edges.select(pl.col("b").alias("a"), pl.col("a").alias("b"))]).unique()
    while True:
        nb = both.join(labels, left_on="b", right_on="node").group_by("a").agg(pl.col("label").min().alias("nb"))
        st = labels.join(nb, left_on="node", right_on="a", how="left")
        st = st.select("node", pl.min_horizontal("label", "nb").alias("label"))
        j = st.join(st.rename({"node": "label", "label": "l2"}), on="label", how="left")
        j = j.select("node", pl.min_horizontal("label", "l2").alias("label")).sort("node")
        if j["label"].equals(labels["label"]):
            break
        labels = j
    comps = labels.rename({"label": "component"})
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
estimate = groups.BYTES_PER_NODE * n + groups.BYTES_PER_EDGE * e
print(seconds, (peak - before) / 1024, comps["component"].n_unique(), estimate)
"""


def run(n: int, e: int, which: str) -> tuple[float, float, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(e), which], capture_output=True, text=True, check=True
    )
    seconds, mb, comps, estimate = out.stdout.split()
    return float(seconds), float(mb), int(comps), int(estimate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, action="append")
    parser.add_argument("--edges", type=int, action="append")
    parser.add_argument("--baseline-max", type=int, default=10_000_000, help="run the old Polars way up to this")
    args = parser.parse_args()
    nodes, edges = args.nodes or [1_000_000, 4_000_000], args.edges or [1_000_000, 8_000_000]
    print(
        f"{'nodes':>12} {'edges':>12} {'way':<8} {'seconds':>8} {'+RSS MB':>8} {'estimate MB':>12} {'components':>11}"
    )
    for n, e in zip(nodes, edges, strict=True):
        ways = ["scipy", "polars"] if e <= args.baseline_max else ["scipy"]
        found = {}
        for way in ways:
            seconds, mb, comps, estimate = run(n, e, way)
            found[way] = comps
            shown = f"{estimate / 2**20:>12,.0f}" if way == "scipy" else f"{'':>12}"
            print(f"{n:>12,} {e:>12,} {way:<8} {seconds:>8.1f} {mb:>8,.0f} {shown} {comps:>11,}")
        if len(set(found.values())) > 1:
            sys.exit("the two ways found different components")


if __name__ == "__main__":
    main()
