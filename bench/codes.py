"""Codes-stage benchmark: cases/s of the whole stage on N sample cases, and of code validation against the
baseline of checking every code of every row with `simple-icd-10-cm` in a Python loop.

    python bench/codes.py --n 100000

Both run in this process on the same cases; the baseline and datakit must find the same invalid codes.
"""

from __future__ import annotations

import argparse
import re
import resource
import time

import polars as pl
import simple_icd_10_cm as icd

from datakit.codes import icd10
from datakit.codes.stage import apply_policy, bad_codes, transform
from datakit.recipe import Codes
from datakit.schema import conform, validate
from datakit.sources.sample import generate_cases

CPT = re.compile(r"^(\d{5}|\d{4}[FTU]|[A-V]\d{4})$")


def per_row_baseline(cases: pl.DataFrame) -> set[str]:
    """What a straightforward implementation does: every code of every row through the library."""
    bad = set()
    for row in cases.select("cpt_codes", "icd10_codes").iter_rows():
        for code in row[1]:
            if not icd.is_valid_item(code) or not icd.is_leaf(code):
                bad.add(code)
        for code in row[0]:
            if not CPT.match(code):
                bad.add(code)
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    raw = generate_cases(args.n, seed=17).cases
    cases = validate(conform(raw), "coding", ["reviewed"]).cases
    icd10.code_table()  # load the code set once, outside every timing
    icd.is_valid_item("A00")
    cases = icd10.normalise_lists(cases, ("icd10_codes", "initial_icd10_codes"))
    n = cases.height
    print(f"{n:,} reviewed cases; {cases['icd10_codes'].explode().n_unique()} unique ICD-10-CM codes")

    t0 = time.perf_counter()
    baseline_bad = per_row_baseline(cases)
    base_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    bad = bad_codes(cases, Codes())
    apply_policy(cases.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("code_tags")), bad, "quarantine")
    ours_s = time.perf_counter() - t0
    assert set(bad["code"]) == baseline_bad, "datakit and the baseline disagree on invalid codes"

    t0 = time.perf_counter()
    examples, quarantine, _conflicts, stats = transform(cases, Codes())
    stage_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"validation  baseline per-row loop : {n / base_s:>12,.0f} cases/s ({base_s:.2f} s)")
    print(
        f"validation  datakit unique codes  : {n / ours_s:>12,.0f} cases/s ({ours_s:.2f} s)  "
        f"x{base_s / ours_s:,.1f} vs baseline"
    )
    print(f"whole codes stage (transform)     : {n / stage_s:>12,.0f} cases/s ({stage_s:.2f} s)")
    print(f"peak RSS                          : {peak:>12,.0f} MB")
    print(
        f"pairs {stats['specificity_pairs']:,} {stats['pairs_by_kind']}; quarantined {quarantine.height:,} "
        f"{stats['quarantine_reasons']}; label-conflict groups {stats['label_conflict_groups']:,}; "
        f"hard cases {stats['tags'].get('hard_case:multi_code', 0):,} multi-code / "
        f"{stats['tags'].get('hard_case:modifier_heavy', 0):,} modifier-heavy; examples {examples.height:,}"
    )


if __name__ == "__main__":
    main()
