"""A cost model for N reports from measured figures: per stage, how time and driver memory grow with the corpus.

    python bench/cost_model.py                       # from bench/results/e2e.json (two or more sizes, engine local)
    python bench/cost_model.py --target 10000000 --hours 1 --save

For each stage it fits time = a * n^alpha and peak RSS = base + slope * n through the two largest measured sizes
(same machine, same run of bench/e2e.py; an alpha below 1 is start-up cost, projected as 1), then projects the
target size: the wall time on the measured cores, the cores a stage that scales out (de-identification: Ray actors)
needs to finish in the time budget, and the driver memory. A stage with alpha well above 1 has a step that grows
faster than the corpus (a search of every text against every other); its projection says where a 10M-report build
stops today. No figure
is typed here: everything comes from the saved measurements, and the model is only as good as two points allow.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SCALES_OUT = {"deid", "pull"}  # per-record work the Ray engine spreads over actors (pull: per source batch)
DRIVER_LIMIT_S = 600  # the longest a driver-side step may take
PIPELINE = ("pull", "deid", "codes", "leakage", "assemble", "shard")


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(a, alpha) of t = a * n^alpha through the two largest sizes."""
    (n1, t1), (n2, t2) = sorted(points)[-2:]
    alpha = math.log(max(t2, 1e-9) / max(t1, 1e-9)) / math.log(n2 / n1)
    return t2 / n2**alpha, alpha


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=int, default=10_000_000, help="reports to build from")
    parser.add_argument("--hours", type=float, default=1.0, help="wall-time budget")
    parser.add_argument("--save", action="store_true", help="write bench/results/cost_model.json")
    args = parser.parse_args()
    record = json.loads((RESULTS / "e2e.json").read_text())
    cores = int(record["machine"]["cores"])
    local = [f for f in record["figures"].values() if f["engine"] == "local"]
    if len({f["n"] for f in local}) < 2:
        raise SystemExit("bench/results/e2e.json needs two sizes: python bench/e2e.py --n 20000 --n 113000 --save")
    stages = [s for s in PIPELINE if any(s in f["stages"] for f in local)]
    budget = args.hours * 3600
    sizes = sorted(f["n"] for f in local)
    print(f"measured on {cores} cores at n = {sizes}; target {args.target:,} reports in {budget:,.0f} s")
    print(
        f"{'stage':<9} {'alpha':>6} {'s at target':>12} {'cores needed':>13} {'MB/1K rec':>10} "
        f"{'RSS at target GB':>17}  note"
    )
    out = {}
    for stage in stages:
        pts = [(f["n"], f["stages"][stage]["seconds"]) for f in local if stage in f["stages"]]
        _, alpha = fit(pts)
        # below 1 the start-up (model loading) is what grows slower than n: project from the per-record rate
        grow = max(alpha, 1.0)
        n_top, t_top = max(pts)
        seconds = t_top * (args.target / n_top) ** grow
        mem = sorted((f["n"], f["stages"][stage].get("peak_rss_mb")) for f in local if stage in f["stages"])
        slope = base = None
        if all(m is not None for _, m in mem[-2:]):
            (n1, m1), (n2, m2) = mem[-2:]
            slope = (m2 - m1) / (n2 - n1)
            base = m2 - slope * n2
        rss = None if slope is None else (base + slope * args.target) / 1024
        scales = stage in SCALES_OUT
        need = math.ceil(seconds * cores / budget) if scales else None
        note = (
            "scales out (Ray actors)"
            if scales
            else ("driver step over 10 min" if seconds > DRIVER_LIMIT_S else "driver step")
        )
        out[stage] = {
            "alpha": round(alpha, 2),
            "seconds_at_target_on_measured_cores": round(seconds),
            "cores_for_budget": need,
            "driver_mb_per_1k_records": None if slope is None else round(slope * 1000, 1),
            "driver_gb_at_target": None if rss is None else round(rss, 1),
            "note": note,
        }
        print(
            f"{stage:<9} {alpha:>6.2f} {seconds:>12,.0f} {need if need else '-':>13} "
            f"{'-' if slope is None else f'{slope * 1000:,.1f}':>10} "
            f"{'-' if rss is None else f'{rss:,.1f}':>17}  {note}"
        )
    if args.save:
        from results import save

        save("cost_model", {f"{args.target}/{stage}": v for stage, v in out.items()}, "python bench/cost_model.py")


if __name__ == "__main__":
    main()
