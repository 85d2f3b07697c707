"""Real services for the database sources: a PostgreSQL 15 started by the tests, and the PostgREST-compatible
server in tests/services in front of it. Each test gets its own table, filled from the sample generator."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl
import psycopg
import pytest
from psycopg import sql

from datakit.pipeline import run_pipeline
from datakit.recipe import Recipe
from datakit.sources.sample import generate_cases
from tests.conftest import coding_recipe, quiet
from tests.services.postgres import (
    AUTHENTICATOR_PASSWORD,
    CASES_SQL,
    MAPPING,
    READER_PASSWORD,
    ROLES_SQL,
    Postgres,
    start_postgres,
)
from tests.services.postgrest import PostgrestServer, make_jwt

_tables = itertools.count(1)


@cache
def sample_rows(n: int) -> pl.DataFrame:
    """n sample cases as the test table's rows: integer ids, the table's own column names, UTC timestamps."""
    cases = generate_cases(n=n, seed=5).cases.unique("case_id", keep="first", maintain_order=True)
    table_names = {schema: own for schema, own in MAPPING.items() if schema != "case_id"}
    return (
        cases.drop("case_id")
        .with_row_index("id", offset=1)
        .with_columns(pl.col("id").cast(pl.Int64), pl.col("updated_at").dt.replace_time_zone("UTC"))
        .rename(table_names)
    )


@dataclass
class CasesTable:
    pg: Postgres
    name: str

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.pg.dsn(), autocommit=True)

    def load(self, frame: pl.DataFrame) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            query = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier("public", self.name), sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
            )
            with cur.copy(query) as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)

    def execute(self, statement: str, params: tuple[object, ...] = ()) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL(statement).format(table=sql.Identifier(self.name)), params)  # type: ignore[arg-type]

    def ids(self, where: str = "TRUE") -> set[int]:
        with self.connect() as conn:
            rows = conn.execute(
                sql.SQL("SELECT id FROM {} WHERE " + where).format(sql.Identifier(self.name))  # type: ignore[arg-type]
            ).fetchall()
        return {int(r[0]) for r in rows}

    def versions(self) -> dict[int, str]:
        """id -> updated_at (ISO) of every row: what a complete pull must hold."""
        with self.connect() as conn:
            rows = conn.execute(sql.SQL("SELECT id, updated_at FROM {}").format(sql.Identifier(self.name))).fetchall()
        return {int(r[0]): r[1].isoformat() for r in rows}


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    try:
        pg = start_postgres()
    except RuntimeError as exc:
        pytest.skip(f"no PostgreSQL for the database-source tests: {exc}")
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(ROLES_SQL)  # type: ignore[arg-type]
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def rest_server(postgres: Postgres) -> Iterator[PostgrestServer]:
    server = PostgrestServer(dsn=postgres.dsn("authenticator", AUTHENTICATOR_PASSWORD)).start()
    yield server
    server.stop()


@pytest.fixture
def rest(rest_server: PostgrestServer) -> Iterator[PostgrestServer]:
    rest_server.reset()
    yield rest_server
    rest_server.reset()


@pytest.fixture
def cases_table(postgres: Postgres) -> Iterator[CasesTable]:
    table = CasesTable(postgres, f"coded_cases_{next(_tables)}")
    with table.connect() as conn:
        conn.execute(CASES_SQL.format(table=table.name))  # type: ignore[arg-type]
    yield table
    with table.connect() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table.name)))


@pytest.fixture
def supabase_env(rest: PostgrestServer, monkeypatch: pytest.MonkeyPatch) -> PostgrestServer:
    monkeypatch.setenv("SUPABASE_URL", rest.url)
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", make_jwt("service_role"))
    return rest


@pytest.fixture
def postgres_env(postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> Postgres:
    monkeypatch.setenv("DATABASE_URL", postgres.dsn("datakit_reader", READER_PASSWORD))
    return postgres


def db_recipe(kind: str, table: str, *overrides: str) -> Recipe:
    mapping = [f"source.columns.{k}={v}" for k, v in MAPPING.items()]
    fast = ["source.retry_backoff_s=0.01", "source.timeout_s=5"]
    return coding_recipe(f"source.kind={kind}", f"source.table={table}", *mapping, *fast, *overrides)


def pull(recipe: Recipe, out: Path) -> dict:
    """Run the pull stage only; return its _stage.json record."""
    outcomes = run_pipeline(recipe, out, quiet(), only=["pull"])
    return outcomes[0].record


def snapshot(out: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((out / "pull_state" / "snapshot").glob("*.parquet")))
