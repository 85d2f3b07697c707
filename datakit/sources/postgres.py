"""The `postgres` source: a direct connection (`DATABASE_URL`) for bulk pulls.

Each page is one fetch from a server-side (named) cursor over the keyset query `(updated_at, id) > key ORDER BY
updated_at, id`, so rows stream in batches without holding the table in memory on either side, and every batch
can be committed before the next is fetched. A dropped connection reconnects and re-opens the cursor at the last
returned key. A statement timeout (`57014`, QueryCanceled) halves the page, re-opens the cursor at the key and
continues, as the supabase source does; a one-row page that still times out is one line naming the index to add.
Errors users can cause (unreachable server, bad password, missing table or column, no permission)
become one line naming the host and database, never the password.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import polars as pl

from datakit.errors import SourceError
from datakit.recipe import PostgresSource
from datakit.sources.incremental import Key, key_columns, last_key, missing_column

_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class PostgresReader:
    def __init__(
        self, cfg: PostgresSource, wanted: list[str], required: set[str], sleep: Callable[[float], None] = time.sleep
    ) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        dsn = os.environ.get(cfg.dsn_env, "").strip()
        if not dsn:
            raise SourceError(f"set {cfg.dsn_env} in the environment for the postgres source")
        try:
            info = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise SourceError(f"{cfg.dsn_env} is not a valid PostgreSQL connection string or URL") from None
        self.dsn = dsn
        self.cfg = cfg
        self.host = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        self.where = f"table {cfg.db_schema}.{cfg.table} at {self.host}"
        self.updated = cfg.source_column("updated_at")
        self.ident = cfg.source_column("case_id")
        self.sleep = sleep
        self.stats: dict[str, int] = {"retries": 0, "cursor_opens": 0, "requests": 0, "statement_timeouts": 0}
        self.limit = cfg.page_size  # halved by each statement timeout
        self._conn: Any = None
        self._cursor: Any = None
        self._cursor_key: tuple[Key | None, bool] | None = None  # where the open cursor's next row follows
        self.columns = self._resolve(wanted, required)
        self.source_id = f"postgres:{self.host}/{cfg.db_schema}.{cfg.table}:{','.join(self.columns)}"

    # -- connection ----------------------------------------------------------------------------------------
    def _connect(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.dsn, connect_timeout=max(1, int(self.cfg.timeout_s)))
            except psycopg.OperationalError as exc:
                raise _classify_connect(exc, self) from None
            self._cursor = None
        return self._conn

    def _resolve(self, wanted: list[str], required: set[str]) -> list[str]:
        """Fail before reading a row: the table must exist and hold every required column; select what it has."""
        import psycopg
        from psycopg import sql

        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
                    "AND NOT attisdropped",
                    (f'"{self.cfg.db_schema}"."{self.cfg.table}"',),
                )
                present = {r[0] for r in cur.fetchall()}
                if not present:
                    raise SourceError(f"{self.where} does not exist (42P01); check source.table and source.db_schema")
                missing = [c for c in wanted if c in required and c not in present]
                if missing:
                    raise missing_column(self.cfg, missing[0], self.where)
                query = sql.SQL("SELECT 1 FROM {} LIMIT 0").format(sql.Identifier(self.cfg.db_schema, self.cfg.table))
                cur.execute(query)
            conn.rollback()
        except psycopg.errors.InsufficientPrivilege:
            conn.rollback()
            raise self._denied() from None
        return [c for c in wanted if c in present]

    def _denied(self) -> SourceError:
        return SourceError(
            f"{self.where}: permission denied (42501) for the user in {self.cfg.dsn_env}; grant SELECT on the table"
        )

    # -- queries -------------------------------------------------------------------------------------------
    def _where(self, after: Key | None, filtered: bool, since: str | None = None, until: str | None = None) -> Any:
        from psycopg import sql

        parts: list[Any] = []
        params: list[Any] = []
        if filtered:
            for f in self.cfg.filters:
                col = sql.Identifier(f.column)
                if f.op == "in":
                    parts.append(sql.SQL("{}::text = ANY(%s)").format(col))
                    params.append(list(f.value))
                elif f.op == "is":
                    word = {"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE"}[str(f.value)]
                    parts.append(sql.SQL("{} IS " + word).format(col))
                else:
                    parts.append(sql.SQL("{} " + _OPS[f.op] + " %s").format(col))
                    params.append(f.value)
        upd, ident = sql.Identifier(self.updated), sql.Identifier(self.ident)
        if after is not None and after.id is None:
            parts.append(sql.SQL("{} >= %s::timestamptz").format(upd))
            params.append(after.updated_at)
        elif after is not None:
            # A row comparison: PostgreSQL walks an (updated_at, id) index from the key.
            parts.append(sql.SQL("({}, {}) > (%s::timestamptz, %s)").format(upd, ident))
            params += [after.updated_at, after.id]
        if since is not None:
            parts.append(sql.SQL("{} >= %s::timestamptz").format(upd))
            params.append(since)
        if until is not None:
            parts.append(sql.SQL("{} <= %s::timestamptz").format(upd))
            params.append(until)
        clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts) if parts else sql.SQL("")
        return clause, params

    def _open_cursor(self, after: Key | None, filtered: bool) -> None:
        from psycopg import sql

        conn = self._connect()
        conn.rollback()
        clause, params = self._where(after, filtered)
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY {}, {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in self.columns),
            sql.Identifier(self.cfg.db_schema, self.cfg.table),
            clause,
            sql.Identifier(self.updated),
            sql.Identifier(self.ident),
        )
        self._cursor = conn.cursor(name="datakit_pull")
        self._cursor.itersize = self.limit
        self._cursor.execute(query, params)
        self.stats["cursor_opens"] += 1

    def page(self, after: Key | None, limit: int, filtered: bool) -> pl.DataFrame:
        limit = min(limit, self.limit)
        rows, fresh = self._fetch(after, limit, filtered)
        if not rows and not fresh:
            # The cursor's snapshot is exhausted; rows updated since it opened sit after the key. The pull ends
            # only when a fresh snapshot has nothing after it either.
            self._reset()
            rows, _ = self._fetch(after, limit, filtered)
        if not rows:
            self._reset()
            return pl.DataFrame({c: [] for c in self.columns})
        frame = pl.DataFrame(rows, schema=self.columns, orient="row", infer_schema_length=None)
        frame = key_columns(frame, self.updated, self.ident)
        self._cursor_key = (last_key(frame), filtered)
        return frame

    def _fetch(self, after: Key | None, limit: int, filtered: bool) -> tuple[list[Any], bool]:
        """The next rows of the open cursor (opening one at `after` if needed), and whether it was opened now."""
        import psycopg

        attempt = 0
        while True:
            try:
                fresh = self._cursor is None or self._cursor_key != (after, filtered)
                if fresh:
                    self._open_cursor(after, filtered)
                self.stats["requests"] += 1
                return self._cursor.fetchmany(limit), fresh
            except psycopg.errors.QueryCanceled:  # statement timeout: a smaller page, from the same key
                self._reset()
                if limit <= 1:
                    raise SourceError(
                        f"{self.where}: a one-row page hit the statement timeout (57014); add an index on "
                        f"({self.updated}, {self.ident}) or raise the role's statement_timeout"
                    ) from None
                limit = self.limit = max(1, limit // 2)
                self.stats["statement_timeouts"] += 1
            except psycopg.OperationalError as exc:
                self._reset()
                if attempt >= self.cfg.max_retries:
                    raise _classify_connect(exc, self) from None
                self.stats["retries"] += 1
                self.sleep(min(30.0, self.cfg.retry_backoff_s * 2**attempt))
                attempt += 1
            except psycopg.errors.InsufficientPrivilege:
                self._reset()
                raise self._denied() from None

    def count(self, since: str | None, until: str, filtered: bool) -> int:
        from psycopg import sql

        conn = self._connect()
        clause, params = self._where(None, filtered, since, until)
        query = sql.SQL("SELECT count(*) FROM {}{}").format(sql.Identifier(self.cfg.db_schema, self.cfg.table), clause)
        with conn.cursor() as cur:
            cur.execute(query, params)
            row = cur.fetchone()
        conn.rollback()
        return int(row[0]) if row else 0

    def _reset(self) -> None:
        self._cursor = None
        self._cursor_key = None
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception:  # the connection may already be gone; a fresh one is opened on the next page
                self._conn.close()
                self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _classify_connect(exc: Exception, reader: PostgresReader) -> SourceError:
    text = str(exc).lower()
    refused = ("password authentication failed", "no password supplied", "role")
    if any(w in text for w in refused[:2]) or (refused[2] in text and "does not exist" in text):
        return SourceError(f"{reader.host} refused the user or password in {reader.cfg.dsn_env}")
    if "database" in text and "does not exist" in text:
        return SourceError(f"the database named in {reader.cfg.dsn_env} does not exist at {reader.host}")
    return SourceError(
        f"cannot reach PostgreSQL at {reader.host} ({type(exc).__name__}); check {reader.cfg.dsn_env} and that the "
        "server is up"
    )
