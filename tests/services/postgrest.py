"""A small PostgREST-compatible HTTP server in front of a real PostgreSQL, for testing the supabase source with
the unmodified supabase-py client (PostgREST itself cannot run here: no binary, no Docker).

What it serves, as PostgREST 12 does: `GET`/`HEAD /rest/v1/<table>` with `select`, `order`, `limit`/`offset`,
column filters (`eq neq gt gte lt lte like ilike is in`, with `not.`), logical `or=(…)`/`and=(…)` with nested
groups and double-quoted values, `Accept-Profile` for the schema, `Prefer: count=exact` with `Content-Range`, a
`max_rows` cap (1,000 as on Supabase), 416 `PGRST103` for an offset past the end, PostgREST-style JSON errors with
PostgreSQL's SQLSTATE and PostgREST's HTTP status mapping, and HS256 JWT roles applied with `SET LOCAL ROLE`
(database grants decide what a role may read). Faults can be injected per request: 503s, a response slower than
the client's timeout, or a real statement timeout (57014) for pages above a size.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import psycopg
from psycopg import sql

JWT_SECRET = "datakit-test-jwt-secret-at-least-32-bytes!"
_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE", "ilike": "ILIKE"}
_RESERVED = {"select", "order", "limit", "offset", "or", "and", "not.or", "not.and", "columns", "on_conflict"}


def make_jwt(role: str, secret: str = JWT_SECRET) -> str:
    return jwt.encode({"role": role, "iss": "datakit-tests"}, secret, algorithm="HS256")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details, "hint": None}


def _status_for(sqlstate: str, role: str) -> int:
    """PostgREST's SQLSTATE -> HTTP status table (the codes these tests meet)."""
    if sqlstate == "42501":
        return 401 if role == "anon" else 403
    if sqlstate in ("42P01", "42883"):
        return 404
    if sqlstate.startswith(("08", "53")):
        return 503
    if sqlstate.startswith(("57", "58", "XX", "25", "40", "55")):
        return 500
    return 400


# -- query-string grammar -----------------------------------------------------------------------------------
def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    parts, depth, quoted, escaped, current = [], 0, False, False, []
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p != ""]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _ident(name: str) -> sql.Identifier:
    if not _IDENT.match(name):
        raise ApiError(400, "PGRST100", f'"failed to parse filter ({name})" (line 1, column 1)')
    return sql.Identifier(name)


def _condition(column: str, expr: str, params: list[Any]) -> sql.Composable:
    """`op.value` (optionally `not.op.value`) on one column."""
    negate = expr.startswith("not.")
    if negate:
        expr = expr[4:]
    op, _, value = expr.partition(".")
    col = _ident(column)
    if op in _OPS:
        params.append(_unquote(value))
        cond: sql.Composable = sql.SQL("{} " + _OPS[op] + " %s").format(col)
    elif op == "is":
        word = {"null": "NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}.get(value.lower())
        if word is None:
            raise ApiError(400, "PGRST100", f'"failed to parse filter (is.{value})" (line 1, column 4)')
        cond = sql.SQL("{} IS " + word).format(col)
    elif op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise ApiError(400, "PGRST100", f'"failed to parse filter (in.{value})" (line 1, column 4)')
        items = [_unquote(v) for v in _split_top(value[1:-1])]
        params.extend(items)
        cond = sql.SQL("{} IN ({})").format(col, sql.SQL(", ").join(sql.SQL("%s") for _ in items))
    else:
        raise ApiError(400, "PGRST100", f'"failed to parse filter ({op}.{value})" (line 1, column 1)')
    return sql.SQL("NOT ({})").format(cond) if negate else cond


def _logic(kind: str, body: str, params: list[Any]) -> sql.Composable:
    """`or`/`and` over `(item,item,…)` where an item is `col.op.value` or a nested `and(…)`/`or(…)`."""
    if not (body.startswith("(") and body.endswith(")")):
        raise ApiError(400, "PGRST100", f'"failed to parse logic tree ({body[:40]})" (line 1, column 1)')
    parts: list[sql.Composable] = []
    for item in _split_top(body[1:-1]):
        negate = item.startswith("not.")
        inner = item[4:] if negate else item
        m = re.match(r"^(and|or)(\(.*\))$", inner, re.S)
        if m:
            part = _logic(m.group(1), m.group(2), params)
        else:
            column, _, expr = inner.partition(".")
            part = _condition(column, expr, params)
        parts.append(sql.SQL("NOT ({})").format(part) if negate else part)
    joined = sql.SQL(" OR " if kind == "or" else " AND ").join(parts)
    return sql.SQL("({})").format(joined)


@dataclass
class Parsed:
    columns: sql.Composable
    where: sql.Composable
    params: list[Any]
    order: sql.Composable
    limit: int | None
    offset: int


def parse_query(query: list[tuple[str, str]]) -> Parsed:
    params: list[Any] = []
    conds: list[sql.Composable] = []
    columns: sql.Composable = sql.SQL("*")
    order: sql.Composable = sql.SQL("")
    limit: int | None = None
    offset = 0
    for key, value in query:
        if key == "select":
            names = [c.strip() for c in value.split(",") if c.strip()]
            if names and names != ["*"]:
                columns = sql.SQL(", ").join(_ident(n) for n in names)
        elif key == "order":
            terms = []
            for term in value.split(","):
                bits = term.split(".")
                direction = "DESC" if "desc" in bits[1:] else "ASC"
                nulls = " NULLS FIRST" if "nullsfirst" in bits[1:] else (" NULLS LAST" if "nullslast" in bits else "")
                terms.append(sql.SQL("{} " + direction + nulls).format(_ident(bits[0])))
            order = sql.SQL(" ORDER BY ") + sql.SQL(", ").join(terms)
        elif key == "limit":
            limit = int(value)
        elif key == "offset":
            offset = int(value)
        elif key in ("or", "and", "not.or", "not.and"):
            negate = key.startswith("not.")
            part = _logic(key.removeprefix("not."), value, params)
            conds.append(sql.SQL("NOT {}").format(part) if negate else part)
        elif key not in _RESERVED:
            conds.append(_condition(key, value, params))
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL("")
    return Parsed(columns, where, params, order, limit, offset)


# -- the server ---------------------------------------------------------------------------------------------
@dataclass
class Fault:
    kind: str  # "503" | "slow" | "statement_timeout"
    seconds: float = 0.0


@dataclass
class Logged:
    method: str
    table: str
    query: list[tuple[str, str]]
    role: str
    status: int
    rows: int


@dataclass
class PostgrestServer:
    dsn: str  # connects as `authenticator`
    jwt_secret: str = JWT_SECRET
    max_rows: int = 1000
    statement_timeout_above: int | None = None  # pages asking for more rows hit a real statement timeout
    faults: list[Fault] = field(default_factory=list)  # consumed one per request, in order
    before_request: Callable[[int], None] | None = None  # called with the request number (1-based)
    log: list[Logged] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> PostgrestServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self, head=False)

            def do_HEAD(self) -> None:
                server._serve(self, head=True)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()
        self.before_request = None
        self.statement_timeout_above = None

    # request handling
    def _role(self, headers: Any) -> str:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return "anon"
        try:
            claims = jwt.decode(auth[7:], self.jwt_secret, algorithms=["HS256"], options={"verify_aud": False})
        except jwt.PyJWTError:
            raise ApiError(401, "PGRST301", "JWSError JWSInvalidSignature") from None
        role = claims.get("role")
        if not isinstance(role, str) or not _IDENT.match(role):
            raise ApiError(401, "PGRST301", "JWT role claim missing or invalid")
        return role

    def _serve(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        with self._lock:
            number = len(self.log) + 1
            fault = self.faults.pop(0) if self.faults else None
        if self.before_request is not None:
            self.before_request(number)
        split = urlsplit(handler.path)
        query = parse_qsl(split.query, keep_blank_values=True)
        table = split.path.removeprefix("/rest/v1/").strip("/")
        role, status, rows = "anon", 500, 0
        try:
            role = self._role(handler.headers)
            if fault is not None and fault.kind == "503":
                status = 503
                self._send(handler, 503, b"upstream connect error or disconnect/reset", {}, head, "text/plain")
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.seconds)
            if not split.path.startswith("/rest/v1/") or not _IDENT.match(table):
                raise ApiError(404, "PGRST125", f"Invalid path specified in request URL: {split.path}")
            schema = handler.headers.get("Accept-Profile", "public")
            prefer = handler.headers.get("Prefer", "")
            body, headers, rows = self._query(schema, table, query, role, "count=exact" in prefer, head, fault)
            status = 200
            self._send(handler, status, body, headers, head)
        except ApiError as err:
            status = err.status
            # PostgREST also names the error in Proxy-Status, so a HEAD request (no body) still carries the code.
            proxy = {"Proxy-Status": f"PostgREST; error={err.code}"}
            self._send(handler, err.status, json.dumps(err.body()).encode(), proxy, head)
        finally:
            with self._lock:
                self.log.append(Logged(handler.command, table, query, role, status, rows))

    def _query(
        self,
        schema: str,
        table: str,
        query: list[tuple[str, str]],
        role: str,
        want_count: bool,
        head: bool,
        fault: Fault | None,
    ) -> tuple[bytes, dict[str, str], int]:
        parsed = parse_query(query)
        limit = self.max_rows if parsed.limit is None else min(parsed.limit, self.max_rows)
        timeout = (fault is not None and fault.kind == "statement_timeout") or (
            self.statement_timeout_above is not None
            and parsed.limit is not None
            and limit > self.statement_timeout_above
        )
        with psycopg.connect(self.dsn) as conn:
            try:
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                exists = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
                if exists is None or exists[0] is None:
                    raise ApiError(404, "PGRST205", f"Could not find the table '{schema}.{table}' in the schema cache")
                source = sql.Identifier(schema, table)
                total = None
                if want_count:
                    counted = conn.execute(
                        sql.SQL("SELECT count(*) FROM {}{}").format(source, parsed.where), parsed.params
                    ).fetchone()
                    total = int(counted[0]) if counted else 0
                if timeout:
                    conn.execute("SET LOCAL statement_timeout = '20ms'")
                    conn.execute("SELECT pg_sleep(0.2)")
                inner = sql.SQL("SELECT {} FROM {}{}{} LIMIT %s OFFSET %s").format(
                    parsed.columns, source, parsed.where, parsed.order
                )
                statement = sql.SQL("SELECT coalesce(json_agg(t), '[]')::text FROM ({}) t").format(inner)
                fetched = conn.execute(statement, [*parsed.params, limit, parsed.offset]).fetchone()
            except psycopg.Error as exc:
                sqlstate = exc.sqlstate or "XX000"
                message = exc.diag.message_primary or type(exc).__name__
                raise ApiError(_status_for(sqlstate, role), sqlstate, message) from None
        text = fetched[0] if fetched else "[]"
        n = len(json.loads(text))
        if n == 0 and parsed.offset > 0:
            details = f"An offset of {parsed.offset} was requested, but there are only {total} rows."
            raise ApiError(416, "PGRST103", "Requested range not satisfiable", details if total is not None else None)
        span = f"{parsed.offset}-{parsed.offset + n - 1}" if n else "*"
        headers = {"Content-Range": f"{span}/{total if total is not None else '*'}"}
        return text.encode(), headers, n

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str],
        head: bool,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                handler.send_header(k, v)
            handler.end_headers()
            if not head:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)
