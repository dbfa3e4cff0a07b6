# shellcheck shell=bash
# A throw-away PostgreSQL 15 for the test suite. Sourced by scripts/test.sh (not run): it defines
#   pg_test_start  initdb in a fresh temporary directory, start `postgres` on a free loopback port, wait until it
#                  accepts connections, export SYNCLINE_TEST_PG_URL (an admin URL: the tests create their own
#                  databases from it, tests/support/.../pg_sandbox.hpp) and SYNCLINE_TEST_PG_BIN;
#   pg_test_stop   stop that server (immediate shutdown) and remove the directory; safe to call at any point, twice,
#                  or without a start (scripts/test.sh calls it from its EXIT trap, pass or fail).
# It never touches a cluster the Debian package may have created and started (15/main on port 5432): it uses only the
# binaries, its own data directory, its own socket directory and a port it found free.
# Environment: SYNCLINE_PG_BIN_DIR overrides the binaries' folder (default /usr/lib/postgresql/15/bin),
# SYNCLINE_TEST_PG_TMPDIR the folder the temporary directory is made in (default /dev/shm when it has room, else
# $TMPDIR or /tmp).

pg_bin=${SYNCLINE_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
# A fixed, test-only password: the server listens on 127.0.0.1 only and lives as long as one test run. The tests
# connect with it over TCP (scram-sha-256), so they exercise a URL with credentials, as a deployment would.
pg_password=syncline-test-only
pg_dir=""
pg_pid=""
# postgres refuses to run as root, and CI runs as root. Then initdb and postgres run as the `postgres` system user:
# the postgresql-common package (a dependency of postgresql-15) creates it, it exists for exactly this, and unlike
# `nobody` it is meant to own files (a data directory owned by `nobody` would be writable by every other daemon that
# runs as `nobody`). setpriv (util-linux) execs in place, so the server's pid is the postmaster itself.
pg_user=""
pg_run=()
if [[ $(id -u) -eq 0 ]]; then
  pg_user=postgres
  pg_run=(setpriv --reuid="$pg_user" --regid="$pg_user" --init-groups --)
fi

# Runs "$@" as the unprivileged user (or as is, when not root), from inside the temporary folder: the caller's
# working directory may not be readable by that user.
pg_as_user() (
  cd "$pg_dir" && exec "${pg_run[@]}" "$@"
)

# initdb of a cluster in $pg_dir/data, superuser `syncline` with the test password.
pg_initdb() {
  # shellcheck disable=SC2016 # $1 is expanded by that sh, on purpose: the file is created by the server's user.
  pg_as_user sh -c 'umask 077 && printf "%s\n" "$1" >pwfile' sh "$pg_password"
  # scram-sha-256 over TCP (what the tests use); trust on the unix socket, which sits in this 0700 folder, so only
  # its owner (and root) can reach it: pg_isready below uses it. UTF8 with the C.UTF-8 locale (always present in
  # Debian's libc): the same on every machine whatever LANG says, byte-order collation, Unicode-aware upper/lower.
  if ! pg_as_user "$pg_bin/initdb" -D "$pg_dir/data" -U syncline --pwfile="$pg_dir/pwfile" --auth-host=scram-sha-256 \
      --auth-local=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$pg_dir/initdb.log" 2>&1; then
    echo "test: initdb failed"; cat "$pg_dir/initdb.log"; return 1
  fi
  rm -f "$pg_dir/pwfile"
}

# The server's settings (see pg_test_start for why each).
pg_server_args() {
  echo -c listen_addresses=127.0.0.1 -c port="$1" -c unix_socket_directories="$pg_dir" -c fsync=off \
    -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=128MB -c min_wal_size=32MB -c max_connections=200
}

pg_test_start() {
  [[ -x "$pg_bin/postgres" && -x "$pg_bin/initdb" ]] ||
    { echo "test: no PostgreSQL 15 in $pg_bin (package postgresql-15)"; return 1; }
  if [[ -n "$pg_user" ]] && ! id -u "$pg_user" >/dev/null 2>&1; then
    echo "test: running as root but there is no '$pg_user' user to run PostgreSQL as (package postgresql-common)"
    return 1
  fi
  # In memory when /dev/shm (tmpfs) has room: measured here, CREATE DATABASE takes ~14 ms on tmpfs and 120-260 ms in
  # /tmp on disk, even with fsync off (it writes the whole template, ~7.5 MB, through the WAL), and every PostgreSQL
  # test creates one. A cluster takes ~40 MB, each live test database ~7.5 MB, the WAL at most ~max_wal_size.
  # SYNCLINE_TEST_PG_TMPDIR overrides the choice.
  local parent=${SYNCLINE_TEST_PG_TMPDIR:-}
  if [[ -z "$parent" ]]; then
    parent=${TMPDIR:-/tmp}
    local shm_free_kb
    shm_free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }') || true
    if [[ -d /dev/shm && -w /dev/shm && ${shm_free_kb:-0} -ge 2097152 ]]; then parent=/dev/shm; fi
  fi
  pg_dir=$(mktemp -d "$parent/syncline-pg-XXXXXX")
  # data/ for the cluster, the server's unix socket and log beside it; all owned by the user the server runs as.
  if [[ -n "$pg_user" ]]; then chown "$pg_user:" "$pg_dir"; fi
  pg_as_user test -w "$pg_dir" ||
    { echo "test: $pg_user cannot write $pg_dir (TMPDIR inside a private folder?)"; return 1; }
  pg_initdb || return 1
  # Test speed: nothing is ever made durable (fsync, synchronous_commit and full_page_writes off: a crash loses the
  # cluster, which is thrown away anyway). max_wal_size 128MB (default 1GB): checkpoints are cheap without fsync,
  # and it bounds the memory the WAL takes when the folder is on tmpfs. max_connections 200: ctest runs 2 tests at a
  # time, each may hold ~20 connections (its servers' pools, its own sessions, a test database's admin connection),
  # so 200 leaves 4x room for the PostgreSQL tests to grow without a test ever failing on "too many clients".
  local port="" candidate
  for _ in $(seq 20); do
    # Pick a random loopback port; if another process holds it, postgres exits and we try the next one.
    candidate=$(shuf -i 20000-60999 -n 1)
    # A subshell that execs: $! is the postmaster's pid, which pg_stop_server signals and waits for.
    # shellcheck disable=SC2046 # the settings are words without spaces, split on purpose
    (cd "$pg_dir" && exec "${pg_run[@]}" "$pg_bin/postgres" -D "$pg_dir/data" $(pg_server_args "$candidate")) \
      >"$pg_dir/postgres.log" 2>&1 &
    pg_pid=$!
    # Readiness through the socket in our own folder: a TCP probe could be answered by someone else's server that
    # holds the port ours failed to bind. 200 x 50 ms: startup after initdb takes well under a second.
    for _ in $(seq 200); do
      if "$pg_bin/pg_isready" -q -h "$pg_dir" -p "$candidate" -d postgres -U syncline; then port=$candidate; break; fi
      kill -0 "$pg_pid" 2>/dev/null || break
      sleep 0.05
    done
    [[ -n "$port" ]] && break
    pg_stop_server
  done
  [[ -n "$port" ]] || { echo "test: postgresql did not start"; cat "$pg_dir/postgres.log"; return 1; }
  echo "test: postgresql on 127.0.0.1:$port"
  export SYNCLINE_TEST_PG_URL="postgresql://syncline:$pg_password@127.0.0.1:$port/postgres"
  export SYNCLINE_TEST_PG_BIN="$pg_bin"
}

# Immediate shutdown (SIGQUIT, what `pg_ctl stop -m immediate` sends): the postmaster stops its children and exits
# without a checkpoint. Bounded: SIGKILL after 10 s, which cannot happen unless the machine is stuck.
pg_stop_server() {
  [[ -n "$pg_pid" ]] || return 0
  kill -QUIT "$pg_pid" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$pg_pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pg_pid" 2>/dev/null || true
  wait "$pg_pid" 2>/dev/null || true
  pg_pid=""
}

pg_test_stop() {
  pg_stop_server
  if [[ -n "$pg_dir" ]]; then rm -rf "$pg_dir"; pg_dir=""; fi
}
