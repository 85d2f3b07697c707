"""End-to-end benchmark: time `datakit run` on N sample cases, per stage, from each stage's _stage.json.

    python bench/e2e.py --n 5000 --n 50000
    python bench/e2e.py --n 20000 --engine local --engine ray     # the Ray engine's overhead on the same cores
    python bench/e2e.py --n 20000 --engine local --engine cluster  # Ray on a two-node cluster on this machine

Each N runs in a fresh subprocess (so peak RSS is that run's own) into a fresh run directory. Prints one
line per stage and figure: rows/s and peak RSS, plus the whole run's wall time and peak RSS. Later issues
add their stages here and their own bench/<stage>.py with a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "radiology-coding.toml"


def bench_one(n: int, recipe: Path, extra: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="datakit-bench-") as tmp:
        out = Path(tmp) / "run"
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "datakit.cli",
            "run",
            str(recipe),
            "--out",
            str(out),
            "--quiet",
            "--json",
            "--set",
            f"source.n={n}",
            *extra,
        ]
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        stages = [
            json.loads(p.read_text())
            for p in sorted((out / "stages").glob("*/_stage.json"), key=lambda p: p.stat().st_mtime)
        ]
        manifest = json.loads((out / "shards" / "manifest.json").read_text())
        examples = manifest["index"]["rows"]
        hashes = [(f["file"], f["sha256"]) for f in manifest["shards"]] + [("index", manifest["index"]["sha256"])]
    return {
        "n": n,
        "wall": wall,
        "peak_mb": max(peak, before) / 1024,
        "stages": stages,
        "examples": examples,
        "hashes": hashes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, action="append", help="sample cases (repeatable); default 5000, 50000")
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe overrides")
    parser.add_argument(
        "--engine",
        action="append",
        choices=("local", "ray", "cluster"),
        help="engine(s) to run, in order; default local. cluster: Ray on --nodes nodes started on this machine "
        "(ray.cluster_utils.Cluster, the cores split between them)",
    )
    parser.add_argument("--nodes", type=int, default=2, help="nodes of the cluster engine")
    parser.add_argument("--save", action="store_true", help="write the figures to bench/results/e2e.json")
    args = parser.parse_args()
    saved: dict[str, object] = {}
    extra = [x for o in args.overrides for x in ("--set", o)]
    engines = args.engine or ["local"]
    print(
        f"{'n':>8} {'engine':<7} {'stage':<9} {'rows in':>9} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12} "
        f"{'at start MB':>12}"
    )
    for n in args.n or [5000, 50000]:
        results = {}
        for engine in engines:
            if engine == "cluster":
                with cluster(args.nodes) as address:
                    flags = [*extra, "--engine", "ray", "--set", f'engine.address="{address}"']
                    result = results[engine] = bench_one(n, args.recipe, flags)
            else:
                result = results[engine] = bench_one(n, args.recipe, [*extra, "--engine", engine])
            for s in result["stages"]:  # type: ignore[union-attr]
                print(
                    f"{n:>8} {engine:<7} {s['stage']:<9} {s['rows_in']:>9,} {s['wall_seconds']:>8.2f} "
                    f"{s['rows_per_second'] or 0:>10,.0f} {s['peak_rss_mb']:>12,.0f} "
                    f"{s.get('start_rss_mb') or 0:>12,.0f}"
                )
                shuffle = (s.get("stats") or {}).get("lsh_shuffle")
                if shuffle:
                    print(
                        f"{'':>8} {engine:<7} {'  LSH':<9} shuffle: {shuffle['shuffled_rows']:,} band rows, "
                        f"{shuffle['shuffled_bytes'] / 2**20:,.1f} MiB from {shuffle['map_tasks']} map to "
                        f"{shuffle['partitions']} reduce tasks; {shuffle['candidate_pairs']:,} candidate pairs, "
                        f"{shuffle['pairs_returned']:,} verified pairs returned"
                    )
            rate = n / result["wall"]  # type: ignore[operator]
            print(
                f"{n:>8} {engine:<6} {'TOTAL':<9} {n:>9,} {result['wall']:>8.2f} {rate:>10,.0f} "
                f"{result['peak_mb']:>12,.0f}   (process wall incl. start-up; {result['examples']:,} examples written)"
            )
        for engine, result in results.items():
            saved[f"{n}/{engine}"] = {
                "n": n,
                "engine": engine,
                "wall_s": round(result["wall"], 1),  # type: ignore[call-overload]
                "peak_rss_mb": round(result["peak_mb"]),  # type: ignore[call-overload]
                "examples": result["examples"],
                "stages": {
                    s["stage"]: {
                        "seconds": s["wall_seconds"],
                        "rows_per_s": s["rows_per_second"],
                        "peak_rss_mb": s["peak_rss_mb"],
                        "start_rss_mb": s.get("start_rss_mb"),  # what the process held when the stage began
                    }
                    for s in result["stages"]  # type: ignore[union-attr]
                },
                "same_shards_as_local": result["hashes"] == results["local"]["hashes"] if "local" in results else None,
            }
        for other in ("ray", "cluster"):
            if {"local", other} <= set(results):
                ratio = results[other]["wall"] / results["local"]["wall"]  # type: ignore[operator]
                same = results[other]["hashes"] == results["local"]["hashes"]
                print(
                    f"{n:>8} {other} / local wall: {ratio:.2f}x (target <= 1.3x); shard and index sha256s equal: {same}"
                )

    if args.save:
        from results import save

        save("e2e", saved, "python bench/e2e.py " + " ".join(sys.argv[1:]))


@contextlib.contextmanager
def cluster(nodes: int) -> Iterator[str]:
    """A Ray cluster of `nodes` nodes on this machine (the cores split between them); yields its address."""
    import os

    from ray.cluster_utils import Cluster

    cpus = max(1, (os.cpu_count() or 2) // nodes)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            c.add_node(num_cpus=cpus)
        c.wait_for_nodes()
        yield c.address
    finally:
        c.shutdown()


if __name__ == "__main__":
    main()
