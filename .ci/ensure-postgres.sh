#!/usr/bin/env bash
# PostgreSQL's server binaries for the database-source tests (they start their own server in a temp folder).
# Installs Debian's `postgresql` package when initdb is missing and we may install packages; otherwise says why
# the tests will skip. Exit status 0 unless --required is given and PostgreSQL is still missing.
set -uo pipefail
have() { command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
if have; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's postgresql package (initdb is missing)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
if have; then exit 0; fi
echo "PostgreSQL is not installed and cannot be installed here: the database-source tests will skip"
[ "${1:-}" = "--required" ] && exit 1
exit 0
