# A throwaway local PostgreSQL for the store's tests (sourced by .ci/run; developers can source
# it too: `source .ci/postgres.sh` then `cargo test`).
#
# Installs Debian's `postgresql` package when no server binaries are found (idempotent, quiet),
# creates a cluster in a temporary folder owned by the `postgres` user (initdb refuses to run as
# root), with trust authentication on 127.0.0.1 only and a free port, starts it, and exports
#   CLIFFPROBE_TEST_PG=postgresql://postgres@127.0.0.1:PORT/postgres
#   CLIFFPROBE_PG_REQUIRED=1   (the tests fail instead of skipping when the server is missing)
# The cluster is stopped and removed when the sourcing shell exits (chained after any EXIT trap
# already set, such as .ci/real-servers.sh's).

cliffprobe_pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

if ! cliffprobe_pg_bindir >/dev/null; then
  echo "== apt-get install postgresql (the store's PostgreSQL tests)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
CLIFFPROBE_PG_BIN=$(cliffprobe_pg_bindir)

# A free port: ask the kernel for one (bind :0), then hand it to the server.
CLIFFPROBE_PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $((20000 + RANDOM % 20000)))
CLIFFPROBE_PG_DIR=$(mktemp -d /tmp/cliffprobe-pg.XXXXXX)

# Run a server command as the postgres user when we are root (initdb and postgres refuse root).
cliffprobe_pg_as() {
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      useradd --system --no-create-home postgres
    fi
    chown -R postgres "$CLIFFPROBE_PG_DIR"
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

cliffprobe_pg_as "'$CLIFFPROBE_PG_BIN/initdb' -D '$CLIFFPROBE_PG_DIR/data' -U postgres \
  --auth=trust --encoding=UTF8 --locale=C.UTF-8 >'$CLIFFPROBE_PG_DIR/initdb.log' 2>&1" || {
  cat "$CLIFFPROBE_PG_DIR/initdb.log" >&2
  return 1 2>/dev/null || exit 1
}
# Loopback TCP only, no Unix socket in a shared folder; fsync off: the data is thrown away.
cliffprobe_pg_as "'$CLIFFPROBE_PG_BIN/pg_ctl' -D '$CLIFFPROBE_PG_DIR/data' -l '$CLIFFPROBE_PG_DIR/server.log' -w \
  -o \"-c listen_addresses=127.0.0.1 -p $CLIFFPROBE_PG_PORT -c unix_socket_directories='$CLIFFPROBE_PG_DIR' \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200\" start >/dev/null" || {
  cat "$CLIFFPROBE_PG_DIR/server.log" >&2
  return 1 2>/dev/null || exit 1
}

cliffprobe_pg_stop() {
  if [ -n "${CLIFFPROBE_PG_DIR:-}" ] && [ -d "$CLIFFPROBE_PG_DIR/data" ]; then
    cliffprobe_pg_as "'$CLIFFPROBE_PG_BIN/pg_ctl' -D '$CLIFFPROBE_PG_DIR/data' -m immediate stop >/dev/null 2>&1" || true
    rm -rf "$CLIFFPROBE_PG_DIR"
  fi
}
cliffprobe_pg_prev_trap=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
trap "${cliffprobe_pg_prev_trap:+$cliffprobe_pg_prev_trap; }cliffprobe_pg_stop" EXIT

export CLIFFPROBE_TEST_PG="postgresql://postgres@127.0.0.1:$CLIFFPROBE_PG_PORT/postgres"
export CLIFFPROBE_PG_REQUIRED=1
echo "PostgreSQL $("$CLIFFPROBE_PG_BIN/postgres" --version | awk '{print $3}') ready: $CLIFFPROBE_TEST_PG"
