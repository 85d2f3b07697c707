"""The supabase and postgres sources against a real PostgreSQL 15 (and, for supabase, the unmodified supabase-py
client through the PostgREST-compatible server in tests/services)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from datakit.errors import SourceError
from datakit.rundir import RunDir
from datakit.sources import incremental
from tests.conftest import CODING_RECIPE, ROOT
from tests.services.postgres import MAPPING, READER_PASSWORD, Postgres, free_port
from tests.services.postgrest import Fault, PostgrestServer, make_jwt
from tests.sources.conftest import CasesTable, db_recipe, pull, sample_rows, snapshot

KINDS = ["supabase", "postgres"]


@pytest.fixture
def env(request: pytest.FixtureRequest, kind: str) -> object:
    """The environment of the source under test (URL + service key, or DATABASE_URL)."""
    return request.getfixturevalue("supabase_env" if kind == "supabase" else "postgres_env")


def assert_complete(out: Path, table: CasesTable) -> None:
    """The pulled dataset holds every id of the table exactly once, each in its newest version."""
    snap = snapshot(out)
    ids = snap["id"].to_list()
    assert len(ids) == len(set(ids)), "an id was pulled twice into the dataset"
    truth = table.versions()
    assert set(ids) == set(truth)
    pulled = dict(zip(ids, snap["_key_updated"].to_list(), strict=True))
    stale = [i for i, ts in truth.items() if pulled[i].isoformat() != ts]
    assert not stale, f"{len(stale)} ids hold an old version"


def after_batch(monkeypatch: pytest.MonkeyPatch, n: int, action: Callable[[], None]) -> None:
    """Run `action` right after the pull commits its n-th batch."""
    original = incremental.PullState.commit_batch
    calls = {"n": 0}

    def commit(self: incremental.PullState, progress: dict, page: pl.DataFrame) -> None:
        original(self, progress, page)
        calls["n"] += 1
        if calls["n"] == n:
            action()

    monkeypatch.setattr(incremental.PullState, "commit_batch", commit)


# -- complete pulls --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_25000_rows_pulled_completely(kind: str, env: object, cases_table: CasesTable, tmp_path: Path) -> None:
    rows = sample_rows(25_000)
    cases_table.load(rows)
    # Ask for more than the server's 1,000-row cap: the pull must advance by the rows it got, not the rows it asked.
    record = pull(db_recipe(kind, cases_table.name, "source.page_size=2500"), tmp_path)
    assert_complete(tmp_path, cases_table)
    stats = record["stats"]["pull"]
    assert stats["source_count"] == stats["distinct_ids_read"] == rows.height
    assert stats["rows_read_again"] == 0
    assert stats["mode"] == "full"
    # The stage output is the validated case schema, with the reviewed rows only.
    cases = RunDir(tmp_path).read_stage("pull")
    reviewed = rows.filter(pl.col("review_status") == "reviewed").height
    assert cases.height + record["rows_quarantined"] == reviewed
    assert cases["case_id"].n_unique() == cases.height
    if kind == "supabase":
        log = env.log  # type: ignore[attr-defined]
        pages = [entry for entry in log if ("order", "updated_at.asc,id.asc") in entry.query]
        assert all(entry.rows <= 1000 for entry in pages)
        assert len(pages) == 26  # 25 full pages and the empty one that ends the pull
        assert not any(key == "offset" for entry in log for key, _ in entry.query), "keyset pages, never offsets"
        assert sum(entry.rows for entry in pages) == rows.height


def test_both_sources_give_the_same_cases(
    supabase_env: PostgrestServer, postgres_env: Postgres, cases_table: CasesTable, tmp_path: Path
) -> None:
    cases_table.load(sample_rows(3000))
    pull(db_recipe("supabase", cases_table.name), tmp_path / "supabase")
    pull(db_recipe("postgres", cases_table.name), tmp_path / "postgres")
    a, b = RunDir(tmp_path / "supabase").read_stage("pull"), RunDir(tmp_path / "postgres").read_stage("pull")
    assert a.height > 2500
    assert a.equals(b)


@pytest.mark.parametrize("kind", KINDS)
def test_ties_on_updated_at(kind: str, env: object, cases_table: CasesTable, tmp_path: Path) -> None:
    rows = sample_rows(6000).with_columns(
        # 4,000 rows share one timestamp: pages must break the tie by id, across many pages.
        pl.when(pl.col("id") <= 4000)
        .then(pl.lit("2024-01-01T00:00:00").str.to_datetime(time_zone="UTC"))
        .otherwise(pl.col("updated_at"))
        .alias("updated_at")
    )
    cases_table.load(rows)
    record = pull(db_recipe(kind, cases_table.name, "source.page_size=333"), tmp_path)
    assert_complete(tmp_path, cases_table)
    assert record["stats"]["pull"]["rows_read_again"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_rows_updated_during_a_pull(
    kind: str, env: object, cases_table: CasesTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases_table.load(sample_rows(5000))
    early = sorted(cases_table.ids())[:5000:50]  # spread over the whole table: some read already, some not yet
    touched = {"done": False}

    def update_once(_: int | None = None) -> None:
        if not touched["done"]:
            touched["done"] = True
            cases_table.execute(
                "UPDATE {table} SET report_text = report_text || ' (addendum)' WHERE id = ANY(%s)", (early,)
            )

    if kind == "supabase":
        server: PostgrestServer = env  # type: ignore[assignment]
        server.before_request = lambda n: update_once() if n == 4 else None
        pull(db_recipe(kind, cases_table.name, "source.page_size=1000"), tmp_path)
    else:
        # The postgres cursor reads one snapshot; the update lands after it opened, behind and ahead of its position.
        after_batch(monkeypatch, 2, update_once)
        pull(db_recipe(kind, cases_table.name, "source.page_size=1000"), tmp_path)
    assert touched["done"]
    assert_complete(tmp_path, cases_table)
    snap = snapshot(tmp_path)
    changed = snap.filter(pl.col("id").is_in(early))
    assert changed["report_text"].str.ends_with(" (addendum)").all()


# -- faults --------------------------------------------------------------------------------------------------
def test_supabase_retries_503_and_timeouts(
    supabase_env: PostgrestServer, cases_table: CasesTable, tmp_path: Path
) -> None:
    cases_table.load(sample_rows(4000))
    supabase_env.faults.extend(
        [Fault("503"), Fault("503"), Fault("slow", seconds=6.0), Fault("503")]  # probe, then the first page, ...
    )
    record = pull(db_recipe("supabase", cases_table.name, "source.timeout_s=2"), tmp_path)
    assert_complete(tmp_path, cases_table)
    assert not supabase_env.faults  # every fault was met and retried past
    # each fault costs one retry; a loaded machine may add a genuine timeout of its own, never remove one
    assert record["stats"]["pull"]["retries"] >= 4


def test_supabase_statement_timeout_halves_the_page(
    supabase_env: PostgrestServer, cases_table: CasesTable, tmp_path: Path
) -> None:
    cases_table.load(sample_rows(3000))
    supabase_env.statement_timeout_above = 300
    record = pull(db_recipe("supabase", cases_table.name, "source.page_size=1000"), tmp_path)
    assert_complete(tmp_path, cases_table)
    stats = record["stats"]["pull"]
    assert stats["statement_timeouts"] == 2  # 1000 -> 500 -> 250
    pages = [e for e in supabase_env.log if e.status == 200 and ("order", "updated_at.asc,id.asc") in e.query]
    assert {dict(e.query)["limit"] for e in pages} == {"250"}


def test_supabase_gives_up_after_max_retries(
    supabase_env: PostgrestServer, cases_table: CasesTable, tmp_path: Path
) -> None:
    cases_table.load(sample_rows(500))
    supabase_env.faults.extend([Fault("503")] * 10)
    with pytest.raises(SourceError, match=r"answered 503, 3 tries") as err:
        pull(db_recipe("supabase", cases_table.name, "source.max_retries=2"), tmp_path)
    assert "\n" not in str(err.value)


def test_postgres_reconnects_after_a_dropped_connection(
    postgres_env: Postgres, cases_table: CasesTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases_table.load(sample_rows(5000))
    # After the second batch the server ends the reader's session (a failover, an idle-killer, a restart).
    kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'datakit_reader'"
    after_batch(monkeypatch, 2, lambda: cases_table.execute(kill))
    record = pull(db_recipe("postgres", cases_table.name, "source.page_size=1000"), tmp_path)
    assert_complete(tmp_path, cases_table)
    stats = record["stats"]["pull"]
    assert stats["retries"] >= 1 and stats["cursor_opens"] >= 2
    assert stats["rows_read_again"] == 0


def test_postgres_statement_timeout_halves_the_page(
    postgres_env: Postgres, cases_table: CasesTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from datakit.sources.postgres import PostgresReader

    cases_table.load(sample_rows(3000))
    asked: list[int] = []

    class TimesOutAbove:  # the server cancels fetches of more than 300 rows (statement_timeout, 57014)
        def __init__(self, cursor: object) -> None:
            self.cursor = cursor

        def fetchmany(self, n: int) -> list:
            asked.append(n)
            if n > 300:
                raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
            return self.cursor.fetchmany(n)  # type: ignore[attr-defined]

    real_open = PostgresReader._open_cursor

    def open_slow(self: PostgresReader, after: object, filtered: bool) -> None:
        real_open(self, after, filtered)  # type: ignore[arg-type]
        self._cursor = TimesOutAbove(self._cursor)

    monkeypatch.setattr(PostgresReader, "_open_cursor", open_slow)
    record = pull(db_recipe("postgres", cases_table.name, "source.page_size=1000"), tmp_path)
    assert_complete(tmp_path, cases_table)
    stats = record["stats"]["pull"]
    assert stats["statement_timeouts"] == 2 and stats["retries"] == 0  # 1000 -> 500 -> 250, not retried as is
    assert asked[:3] == [1000, 500, 250] and set(asked[3:]) == {250}


# -- resuming ------------------------------------------------------------------------------------------------
def _cli(out: Path, table: str, kind: str, *extra: str) -> list[str]:
    sets = [f"source.kind={kind}", f"source.table={table}", "source.page_size=500", "source.retry_backoff_s=0.01"]
    sets += [f"source.columns.{k}={v}" for k, v in MAPPING.items()]
    args = [sys.executable, "-m", "datakit.cli", "pull", str(CODING_RECIPE), "--out", str(out), "--quiet"]
    for s in [*sets, *extra]:
        args += ["--set", s]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_pull_killed_mid_way_resumes_from_its_last_batch(
    kind: str, env: object, cases_table: CasesTable, tmp_path: Path
) -> None:
    rows = sample_rows(25_000)
    cases_table.load(rows)
    if kind == "supabase":
        server: PostgrestServer = env  # type: ignore[assignment]
        server.before_request = lambda n: time.sleep(0.05)  # slow enough to be caught mid-way
    progress = tmp_path / "pull_state" / "inflight" / "progress.json"
    proc = subprocess.Popen(_cli(tmp_path, cases_table.name, kind), cwd=ROOT, env=os.environ.copy())
    deadline = time.monotonic() + 120
    batches = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                batches = json.loads(progress.read_text())["batches"]
            except (OSError, ValueError, KeyError):
                batches = 0
            if batches >= 5:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the pull finished before it could be killed"
    if kind == "supabase":
        env.before_request = None  # type: ignore[attr-defined]
    done = subprocess.run(_cli(tmp_path, cases_table.name, kind), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "stages" / "pull" / "_stage.json").read_text())
    stats = record["stats"]["pull"]
    assert stats["resumed_batches"] >= 5
    assert stats["distinct_ids_read"] == rows.height == stats["source_count"]
    assert stats["rows_read"] == stats["distinct_ids_read"], "batches committed before the kill were read again"
    assert_complete(tmp_path, cases_table)


# -- incremental ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_incremental_pull_returns_exactly_the_new_versions(
    kind: str, env: object, cases_table: CasesTable, tmp_path: Path
) -> None:
    rows = sample_rows(6000)
    cases_table.load(rows.head(5000))
    recipe = db_recipe(
        kind,
        cases_table.name,
        "source.page_size=800",
        'source.filters=[{column = "review_status", op = "eq", value = "reviewed"}]',
    )
    first = pull(recipe, tmp_path)["stats"]["pull"]
    reviewed_before = cases_table.ids("review_status = 'reviewed'")
    assert first["mode"] == "full" and first["rows_in_dataset"] == len(reviewed_before)

    # New rows, edited rows, and a reviewed row sent back for review (it must leave the dataset).
    new = rows.slice(5000, 300).with_columns(pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("updated_at"))
    cases_table.load(new.drop("updated_at"))
    edited = sorted(reviewed_before)[100:400:3]
    cases_table.execute("UPDATE {table} SET report_text = report_text || ' Addendum.' WHERE id = ANY(%s)", (edited,))
    sent_back = sorted(reviewed_before)[10]
    cases_table.execute("UPDATE {table} SET review_status = 'pending' WHERE id = %s", (sent_back,))

    second = pull(recipe, tmp_path)["stats"]["pull"]
    assert second["mode"] == "incremental"
    changed = 300 + len(edited) + 1
    assert second["distinct_ids_read"] >= changed
    assert second["distinct_ids_read"] <= changed + 50, "an incremental pull reads the window, not the table"
    assert second["removed_by_filter"] == 1
    snap = snapshot(tmp_path)
    reviewed_now = cases_table.ids("review_status = 'reviewed'")
    assert set(snap["id"].to_list()) == reviewed_now
    assert sent_back not in set(snap["id"].to_list())
    assert snap.filter(pl.col("id").is_in(edited))["report_text"].str.ends_with(" Addendum.").all()

    third = pull(recipe, tmp_path)["stats"]["pull"]
    assert third["mode"] == "incremental"
    assert third["rows_in_dataset"] == len(reviewed_now)
    assert third["distinct_ids_read"] <= changed + 50  # only the overlap window again


@pytest.mark.parametrize("kind", KINDS)
def test_an_unchanged_source_leaves_later_stages_current(
    kind: str, env: object, cases_table: CasesTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datakit.pipeline import run_pipeline
    from tests.conftest import quiet

    monkeypatch.setenv("DATAKIT_SECRET", "a-test-secret-for-a-database-source")  # the demo key keys only the sample
    cases_table.load(sample_rows(800))
    recipe = db_recipe(kind, cases_table.name)
    run_pipeline(recipe, tmp_path, quiet(), only=["pull", "deid"])
    again = run_pipeline(recipe, tmp_path, quiet(), only=["pull", "deid"])
    assert [o.status for o in again] == ["ran", "skipped"]  # the pull always runs; its output did not change


# -- errors a user can cause ---------------------------------------------------------------------------------
def _one_line(exc: pytest.ExceptionInfo[SourceError], *needles: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, text
    return text


def _table_and_column_errors(kind: str, table: str, out: Path) -> None:
    """Both database readers name a missing table and a mapped column the table lacks, in one line."""
    with pytest.raises(SourceError) as err:
        pull(db_recipe(kind, "no_such_table"), out / "c")
    _one_line(err, "does not exist", "source.table")

    with pytest.raises(SourceError) as err:
        pull(db_recipe(kind, table, "source.columns.report_text=findings"), out / "d")
    _one_line(err, "source.columns.report_text names column 'findings'")


def test_supabase_errors(
    supabase_env: PostgrestServer, cases_table: CasesTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases_table.load(sample_rows(200))
    recipe = db_recipe("supabase", cases_table.name, "source.max_retries=1")
    service_key = make_jwt("service_role")

    monkeypatch.setenv("SUPABASE_SERVICE_KEY", make_jwt("anon"))
    with pytest.raises(SourceError) as err:
        pull(recipe, tmp_path / "a")
    _one_line(err, "permission denied (42501)", "SUPABASE_SERVICE_KEY")

    monkeypatch.setenv("SUPABASE_SERVICE_KEY", make_jwt("service_role", secret="not-the-project-secret-0123456789"))
    with pytest.raises(SourceError) as err:
        pull(recipe, tmp_path / "b")
    text = _one_line(err, "refused the key in SUPABASE_SERVICE_KEY")
    assert "eyJ" not in text  # the key itself never appears

    monkeypatch.setenv("SUPABASE_SERVICE_KEY", service_key)
    _table_and_column_errors("supabase", cases_table.name, tmp_path)

    monkeypatch.setenv("SUPABASE_URL", "project.supabase.co")
    with pytest.raises(SourceError) as err:
        pull(recipe, tmp_path / "e")
    _one_line(err, "SUPABASE_URL is not a valid URL")

    monkeypatch.setenv("SUPABASE_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SourceError) as err:
        pull(recipe, tmp_path / "f")
    _one_line(err, "cannot reach 127.0.0.1")

    monkeypatch.delenv("SUPABASE_SERVICE_KEY")
    with pytest.raises(SourceError) as err:
        pull(recipe, tmp_path / "g")
    _one_line(err, "set SUPABASE_SERVICE_KEY")


def test_postgres_errors(
    postgres_env: Postgres, cases_table: CasesTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases_table.load(sample_rows(200))
    recipe = db_recipe("postgres", cases_table.name, "source.max_retries=0")
    pg = postgres_env

    monkeypatch.setenv("DATABASE_URL", pg.dsn("datakit_reader", "wrong-password"))
    with pytest.raises(SourceError) as err:
        pull(recipe, tmp_path / "a")
    text = _one_line(err, "refused the user or password in DATABASE_URL")
    assert "wrong-password" not in text

    monkeypatch.setenv("DATABASE_URL", pg.dsn("datakit_nobody", READER_PASSWORD))
    with pytest.raises(SourceError) as err:
        pull(recipe, tmp_path / "b")
    _one_line(err, "permission denied (42501)")

    monkeypatch.setenv("DATABASE_URL", pg.dsn("datakit_reader", READER_PASSWORD))
    _table_and_column_errors("postgres", cases_table.name, tmp_path)

    monkeypatch.setenv("DATABASE_URL", f"postgresql://datakit_reader:{READER_PASSWORD}@127.0.0.1:{free_port()}/x")
    with pytest.raises(SourceError) as err:
        pull(recipe, tmp_path / "e")
    text = _one_line(err, "cannot reach PostgreSQL at 127.0.0.1")
    assert READER_PASSWORD not in text

    monkeypatch.setenv("DATABASE_URL", "host=127.0.0.1 port=notaport = =")
    with pytest.raises(SourceError) as err:
        pull(recipe, tmp_path / "f")
    _one_line(err, "DATABASE_URL is not a valid PostgreSQL connection string")
