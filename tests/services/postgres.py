"""A real PostgreSQL 15 for tests: initdb in a temporary folder (as the `postgres` user when run as root), a
loopback port, password auth over TCP, and a schema that mirrors Supabase's roles and grants.

Skips (with the reason) when PostgreSQL's server binaries are not installed; `.ci/run` installs Debian's
`postgresql` package so CI always has them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER_PASSWORD = "datakit-test-superuser"
AUTHENTICATOR_PASSWORD = "datakit-test-authenticator"
READER_PASSWORD = "datakit-test-reader"


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    root: Path
    port: int
    pg_ctl: str
    as_user: list[str]

    def dsn(self, user: str = "postgres", password: str = SUPERUSER_PASSWORD, dbname: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> Postgres:
    """initdb + pg_ctl start; raises RuntimeError with the reason when it cannot."""
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed (Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="datakit-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: hand the folder to the postgres user and run as it.
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no 'postgres' user to run initdb as") from None
        os.chmod(root, 0o755)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    pwfile = root / "pw"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    if as_user:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    data = root / "data"
    init = subprocess.run(
        [
            *as_user,
            initdb,
            "-D",
            str(data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.strip()[-400:]}")
    port = free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    start = subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "-t", "60", "start"],
        capture_output=True,
        text=True,
        check=False,
    )
    if start.returncode != 0:
        log = (root / "log").read_text()[-400:] if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {start.stderr.strip()[-300:]} {log}")
    return Postgres(root=root, port=port, pg_ctl=pg_ctl, as_user=as_user)


# The Supabase role layout: PostgREST logs in as `authenticator` and switches to the JWT's role; `anon` has no
# grant on the cases table, `service_role` reads it. `datakit_reader` is a plain login for the postgres source.
ROLES_SQL = f"""
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT PASSWORD '{AUTHENTICATOR_PASSWORD}';
GRANT anon, authenticated, service_role TO authenticator;
CREATE ROLE datakit_reader LOGIN PASSWORD '{READER_PASSWORD}';
CREATE ROLE datakit_nobody LOGIN PASSWORD '{READER_PASSWORD}';
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role, datakit_reader, datakit_nobody;
"""

CASES_SQL = """
CREATE TABLE public.{table} (
  id bigint PRIMARY KEY,
  patient_mrn text NOT NULL,
  accession text,
  exam_date date,
  exam_description text,
  reason text,
  report_text text,
  impression text,
  cpt_codes text[],
  modifiers text[],
  icd10_codes text[],
  initial_icd10_codes text[],
  review_status text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON public.{table} (updated_at, id);
CREATE OR REPLACE FUNCTION public.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN NEW.updated_at := clock_timestamp(); END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER {table}_touch BEFORE UPDATE ON public.{table}
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();
GRANT SELECT ON public.{table} TO service_role, datakit_reader;
"""

# Schema columns -> the test table's column names (what a recipe's source.columns maps).
MAPPING = {"case_id": "id", "patient_id": "patient_mrn", "reason_for_exam": "reason"}
