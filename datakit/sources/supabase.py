"""The `supabase` source: a Supabase project's table read with the unmodified supabase client (PostgREST).

Pages are keyset pages on `(updated_at, id)`, expressed as a PostgREST `or=(...)` filter; a page may come back
shorter than asked (Supabase caps responses at 1,000 rows by default), and the pull advances by the rows
actually returned. 5xx answers, network errors and timeouts are retried with back-off (the client's own retry is
off, so the recipe's settings govern); a statement timeout (`57014`) halves the page and continues;
`PGRST103`/416 (range past the end) is the end of data. Every other error is one line saying what to fix. The
key is read from the environment once and never appears in logs or messages.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import polars as pl

from datakit.errors import SourceError
from datakit.recipe import SupabaseSource
from datakit.sources.incremental import Key, key_columns, missing_column

# PostgREST codes (and bare HTTP statuses the client reports when a proxy answered) worth another try.
_TRANSIENT = re.compile(r"^(5\d\d|PGRST00[0-3]|08\w{3}|53\w{3}|57P0[1-3]|40001|40P01)$")
_AUTH = {"401", "PGRST300", "PGRST301", "PGRST302", "PGRST303"}
_MISSING_TABLE = {"404", "42P01", "PGRST205", "PGRST106"}


def _quote(value: str) -> str:
    """A value inside a PostgREST logical filter: double-quoted, so `.`, `:`, `,` and `+` stay literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _code(exc: Exception) -> str:
    return str(getattr(exc, "code", None) or "")


class SupabaseReader:
    def __init__(
        self, cfg: SupabaseSource, wanted: list[str], required: set[str], sleep: Callable[[float], None] = time.sleep
    ) -> None:
        from supabase import ClientOptions, SupabaseException, create_client

        url = os.environ.get(cfg.url_env, "").strip()
        key = os.environ.get(cfg.key_env, "").strip()
        if not url or not key:
            missing = [name for name, value in ((cfg.url_env, url), (cfg.key_env, key)) if not value]
            raise SourceError(f"set {' and '.join(missing)} in the environment for the supabase source")
        parts = urlsplit(url)
        self.host = parts.netloc.rsplit("@", 1)[-1] or "(none)"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(f"{cfg.url_env} is not a valid URL (expected https://<project>.supabase.co)")
        self.cfg = cfg
        self.where = f"table {cfg.db_schema}.{cfg.table} at {self.host}"
        # Our own HTTP client: the timeout stays a float (the client's own option truncates it to whole seconds).
        self._http = httpx.Client(timeout=cfg.timeout_s, follow_redirects=True)
        options = ClientOptions(
            schema=cfg.db_schema,
            httpx_client=self._http,
            postgrest_client_retry=False,
            auto_refresh_token=False,
            persist_session=False,
        )
        try:
            self.client = create_client(url, key, options=options)
        except SupabaseException as exc:
            raise SourceError(f"{cfg.url_env} or {cfg.key_env} was refused by the supabase client ({exc})") from None
        self.updated = cfg.source_column("updated_at")
        self.ident = cfg.source_column("case_id")
        self.sleep = sleep
        self.limit = cfg.page_size
        self.stats: dict[str, int] = {"retries": 0, "statement_timeouts": 0, "requests": 0}
        self.columns = self._resolve(wanted, required)
        self.source_id = f"supabase:{self.host}/{cfg.db_schema}.{cfg.table}:{','.join(self.columns)}"

    def _resolve(self, wanted: list[str], required: set[str]) -> list[str]:
        """The columns to select: the wanted ones the table has (read off one row); required ones must exist."""
        sample = self._execute(self._table().select("*").limit(1)).data
        if not sample:
            return [c for c in wanted if c in required]
        present = set(sample[0])
        missing = [c for c in wanted if c in required and c not in present]
        if missing:
            raise missing_column(self.cfg, missing[0], self.where)
        return [c for c in wanted if c in present]

    # -- queries -------------------------------------------------------------------------------------------
    def _table(self) -> Any:
        return self.client.table(self.cfg.table)

    def _filtered(self, query: Any) -> Any:
        for f in self.cfg.filters:
            if f.op == "in":
                query = query.in_(f.column, list(f.value))
            elif f.op == "is":
                query = (
                    query.filter(f.column, "not.is", "null") if f.value == "not_null" else query.is_(f.column, f.value)
                )
            else:
                query = query.filter(f.column, f.op, f.value)
        return query

    def page(self, after: Key | None, limit: int, filtered: bool) -> pl.DataFrame:
        while True:
            size = min(limit, self.limit)
            query = self._table().select(",".join(self.columns))
            if filtered:
                query = self._filtered(query)
            if after is not None and after.id is None:
                query = query.gte(self.updated, after.updated_at)
            elif after is not None:
                ts, ident = _quote(after.updated_at), _quote(str(after.id))
                # The redundant `updated_at >= ts` lets PostgreSQL walk an (updated_at, id) index from the key and
                # stop at the limit, instead of scanning and sorting the table for every page.
                query = query.gte(self.updated, after.updated_at)
                query = query.or_(f"{self.updated}.gt.{ts},{self.ident}.gt.{ident}")
            query = query.order(self.updated).order(self.ident).limit(size)
            try:
                data = self._execute(query).data
            except _StatementTimeout:
                if size == 1:
                    raise SourceError(
                        f"{self.where}: a one-row page hit the statement timeout (57014); add an index on "
                        f"({self.updated}, {self.ident}) or raise the role's statement_timeout"
                    ) from None
                self.limit = max(1, size // 2)
                self.stats["statement_timeouts"] += 1
                continue
            except _EndOfData:
                data = []
            if not data:
                return pl.DataFrame({c: [] for c in self.columns})
            # Polars' JSON reader builds the columns natively (2x faster than from_dicts on list columns).
            frame = pl.read_json(io.BytesIO(json.dumps(data).encode()), infer_schema_length=None)
            return key_columns(frame, self.updated, self.ident)

    def count(self, since: str | None, until: str, filtered: bool) -> int:
        query = self._table().select(self.ident, count="exact", head=True)
        if filtered:
            query = self._filtered(query)
        if since is not None:
            query = query.gte(self.updated, since)
        query = query.lte(self.updated, until)
        count = self._execute(query).count
        if count is None:
            raise SourceError(f"{self.where}: the server did not return an exact count (Content-Range)")
        return int(count)

    def close(self) -> None:
        self._http.close()

    # -- errors --------------------------------------------------------------------------------------------
    def _execute(self, query: Any) -> Any:
        from postgrest.exceptions import APIError

        attempt = 0
        while True:
            self.stats["requests"] += 1
            try:
                return query.execute()
            except APIError as exc:
                code = _code(exc)
                if code == "57014":
                    raise _StatementTimeout from None
                if code == "PGRST103" or code == "416":
                    raise _EndOfData from None
                if not _TRANSIENT.match(code):
                    raise self._fatal(exc) from None
                failure = f"the server answered {code}"
            except httpx.TimeoutException:
                failure = f"no answer within {self.cfg.timeout_s:g} s"
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                failure = f"cannot reach {self.host} ({type(exc).__name__})"
            if attempt >= self.cfg.max_retries:
                raise SourceError(
                    f"{self.where}: {failure}, {attempt + 1} tries; check the URL in {self.cfg.url_env} and the "
                    "project's status, or raise source.max_retries / source.timeout_s"
                ) from None
            self.stats["retries"] += 1
            self.sleep(min(30.0, self.cfg.retry_backoff_s * 2**attempt))
            attempt += 1

    def _fatal(self, exc: Any) -> SourceError:
        code = _code(exc)
        message = str(getattr(exc, "message", "") or "")
        if code in _AUTH or "api key" in message.lower() or "jwt" in message.lower():
            return SourceError(
                f"{self.where} refused the key in {self.cfg.key_env} ({code or 'unauthorized'}): set it to the "
                "project's service_role key"
            )
        if code == "42501":
            return SourceError(
                f"{self.where}: permission denied (42501) for the role of the key in {self.cfg.key_env}; use the "
                "service_role key or grant SELECT on the table to that role"
            )
        if code in _MISSING_TABLE:
            return SourceError(
                f"{self.where} does not exist or is not exposed ({code}); check source.table and source.db_schema"
            )
        if code == "42703":
            missing = re.search(r"column \S*?\.?([A-Za-z_][A-Za-z0-9_]*) does not exist", message)
            return missing_column(self.cfg, missing.group(1) if missing else None, self.where)
        # Other PostgREST errors carry SQL messages about the query, never row values; keep only the code.
        return SourceError(f"{self.where}: request failed with code {code or 'unknown'}; check the source settings")


class _StatementTimeout(Exception):
    pass


class _EndOfData(Exception):
    pass
