"""Pull benchmark: rows/s of the postgres and supabase sources on N sample cases in a local PostgreSQL 15.

    python bench/pull.py --n 100000

Starts its own PostgreSQL (as the tests do: initdb in a temp folder, as the `postgres` user when root) and the
PostgREST-compatible test server, loads N sample cases (realistic report text, code lists, timestamps), then
measures in the same run:

- postgres: datakit's keyset server-side-cursor pull (batches committed to disk, completeness count) against the
  floor of one `SELECT` + `fetchall()` into a Polars frame (no batching, no resumability);
- supabase: datakit's keyset pull through the unmodified supabase client against the naive client loop of
  offset pages (`.range(a, b)`), both through the same in-process test server (so the figures include that
  Python server; a real PostgREST is faster).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datakit.recipe import PostgresSource, SupabaseSource  # noqa: E402
from datakit.sources.incremental import pull  # noqa: E402
from datakit.sources.postgres import PostgresReader  # noqa: E402
from datakit.sources.pull import selection  # noqa: E402
from datakit.sources.supabase import SupabaseReader  # noqa: E402
from tests.services.postgres import (  # noqa: E402
    AUTHENTICATOR_PASSWORD,
    CASES_SQL,
    MAPPING,
    READER_PASSWORD,
    ROLES_SQL,
    start_postgres,
)
from tests.services.postgrest import PostgrestServer, make_jwt  # noqa: E402
from tests.sources.conftest import CasesTable, sample_rows  # noqa: E402


def timed(fn: object) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()  # type: ignore[operator]
    wall = time.perf_counter() - t0
    return wall, out


def datakit_pull(reader: Any, cfg: Any) -> object:
    """datakit's pull through `reader` into a throw-away run directory (what `datakit pull` does)."""
    with tempfile.TemporaryDirectory() as run:
        result = pull(reader, cfg, Path(run))
    reader.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=10_000, help="postgres rows per cursor fetch")
    parser.add_argument("--skip-supabase", action="store_true")
    args = parser.parse_args()

    import os

    pg = start_postgres()
    server = None
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(ROLES_SQL)  # type: ignore[arg-type]
            conn.execute(CASES_SQL.format(table="bench_cases"))  # type: ignore[arg-type]
        rows = sample_rows(args.n)
        table = CasesTable(pg, "bench_cases")
        load_s, _ = timed(lambda: table.load(rows))
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE bench_cases")
            size = conn.execute("SELECT pg_total_relation_size('bench_cases')").fetchone()
        mb = (size[0] if size else 0) / 2**20
        n = rows.height
        print(f"{n:,} rows loaded in {load_s:.1f} s; table + indexes {mb:.0f} MB ({mb * 2**20 / n:,.0f} B/row)")
        mean_text = rows["report_text"].str.len_chars().mean()
        print(f"mean report_text {mean_text:.0f} chars\n")

        dsn = pg.dsn("datakit_reader", READER_PASSWORD)
        os.environ["DATABASE_URL"] = dsn
        cfg = PostgresSource(table="bench_cases", columns=MAPPING, page_size=args.page_size)
        wanted, required = selection(cfg, "coding")

        def floor() -> pl.DataFrame:
            with psycopg.connect(dsn) as conn:
                cur = conn.execute(f"SELECT {', '.join(wanted)} FROM bench_cases")
                return pl.DataFrame(cur.fetchall(), schema=wanted, orient="row", infer_schema_length=None)

        base_s, base = timed(floor)
        dk_s, result = timed(lambda: datakit_pull(PostgresReader(cfg, wanted, required), cfg))
        assert result.rows.height == base.height == n  # type: ignore[attr-defined]
        print("postgres source")
        print(f"  baseline SELECT + fetchall   {base_s:7.2f} s  {n / base_s:10,.0f} rows/s")
        print(
            f"  datakit keyset cursor pull   {dk_s:7.2f} s  {n / dk_s:10,.0f} rows/s  "
            f"(x{base_s / dk_s:.2f}; {result.stats['pages_this_run']} fetches of {args.page_size:,}, "  # type: ignore[attr-defined]
            "each committed to disk, + exact count)"
        )

        if args.skip_supabase:
            return
        server = PostgrestServer(dsn=pg.dsn("authenticator", AUTHENTICATOR_PASSWORD)).start()
        os.environ["SUPABASE_URL"] = server.url
        os.environ["SUPABASE_SERVICE_KEY"] = make_jwt("service_role")
        scfg = SupabaseSource(table="bench_cases", columns=MAPPING, page_size=1000)

        def naive() -> int:
            from postgrest.exceptions import APIError
            from supabase import create_client

            client = create_client(server.url, os.environ["SUPABASE_SERVICE_KEY"])  # type: ignore[union-attr]
            got, start = 0, 0
            while True:
                query = client.table("bench_cases").select(",".join(wanted)).range(start, start + 999)
                try:
                    page = query.execute().data
                except APIError as exc:  # 416 / PGRST103: the offset passed the end
                    if exc.code != "PGRST103":
                        raise
                    page = []
                if not page:
                    return got
                got += len(page)
                start += len(page)

        naive_s, got = timed(naive)
        sb_s, sresult = timed(lambda: datakit_pull(SupabaseReader(scfg, wanted, required), scfg))
        assert sresult.rows.height == n  # type: ignore[attr-defined]
        print("supabase source (through the in-process PostgREST-compatible test server)")
        print(
            f"  baseline offset pages        {naive_s:7.2f} s  {n / naive_s:10,.0f} rows/s  (rows: {got:,}, unordered)"
        )
        print(
            f"  datakit keyset pages         {sb_s:7.2f} s  {n / sb_s:10,.0f} rows/s  "
            f"(x{naive_s / sb_s:.2f}; {sresult.stats['requests']} requests of <= 1,000 rows)"  # type: ignore[attr-defined]
        )
    finally:
        if server is not None:
            server.stop()
        pg.stop()


if __name__ == "__main__":
    main()
