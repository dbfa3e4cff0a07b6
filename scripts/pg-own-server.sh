#!/usr/bin/env bash
# A PostgreSQL 15 of one test's own, in the foreground: the test starts it as a child process, stops it (SIGINT: a
# fast shutdown; SIGKILL: a crash) and starts it again on the same folder and port, to see syncline through a
# database restart (tests/integration/pg_outage_test.cpp). Usage: pg-own-server.sh DIR PORT
# DIR is created (owned by the user the server runs as, see scripts/pg-test-server.sh) and initialised on first use;
# the superuser is `syncline` with the test password of pg-test-server.sh. The script execs into postgres, so the
# child's pid is the postmaster's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg-test-server.sh
source "$here/pg-test-server.sh"
[[ $# -eq 2 ]] || { echo "usage: $0 DIR PORT" >&2; exit 2; }
pg_dir=$1
mkdir -p "$pg_dir"
if [[ -n "$pg_user" ]]; then chown "$pg_user:" "$pg_dir"; fi
chmod 700 "$pg_dir"
if [[ ! -f "$pg_dir/data/PG_VERSION" ]]; then pg_initdb; fi
cd "$pg_dir"
# shellcheck disable=SC2046 # the settings are words without spaces, split on purpose
exec "${pg_run[@]}" "$pg_bin/postgres" -D "$pg_dir/data" $(pg_server_args "$2")
