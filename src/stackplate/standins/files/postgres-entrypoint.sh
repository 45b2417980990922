#!/bin/bash
# stackplate stand-in for the official postgres image's entrypoint: our own
# script for the part of its documented contract that stackplate projects use.
#   - first argument starting with "-": run postgres with those options;
#   - as root: own PGDATA, then run again as the postgres user;
#   - POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB may each come from a file
#     instead: <NAME>_FILE (e.g. a Compose secret in /run/secrets); both is an error;
#   - an empty PGDATA: initdb as POSTGRES_USER with POSTGRES_PASSWORD, allow
#     password logins from the network, create POSTGRES_DB, run the files in
#     /docker-entrypoint-initdb.d (*.sh, *.sql, *.sql.gz) once, in name order.
set -euo pipefail

if [ "${1:0:1}" = "-" ]; then
  set -- postgres "$@"
fi
if [ "$1" != "postgres" ]; then
  exec "$@"
fi

if [ "$(id -u)" = "0" ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

# <NAME>_FILE -> NAME, as the official entrypoint's file_env does (trailing newlines dropped).
file_env() {
  local name="$1" file_var="${1}_FILE"
  if [ -n "${!name:-}" ] && [ -n "${!file_var:-}" ]; then
    echo "stand-in entrypoint: both $name and $file_var are set (but are exclusive)" >&2
    exit 1
  fi
  if [ -n "${!file_var:-}" ]; then
    export "$name"="$(<"${!file_var}")"
  fi
  unset "$file_var"
}

run_init_file() {
  local file="$1"
  local sql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB")
  case "$file" in
    *.sh)
      if [ -x "$file" ]; then "$file"; else # shellcheck disable=SC1090
        . "$file"; fi ;;
    *.sql) "${sql[@]}" -f "$file" ;;
    *.sql.gz) gunzip -c "$file" | "${sql[@]}" ;;
    *) echo "stand-in entrypoint: ignoring $file" >&2 ;;
  esac
}

initialise() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER
  file_env POSTGRES_DB
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "stand-in entrypoint: POSTGRES_PASSWORD is not set; the database is not initialised" >&2
    exit 1
  fi
  export POSTGRES_USER="${POSTGRES_USER:-postgres}"
  export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of options
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    ${POSTGRES_INITDB_ARGS:-}
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # A server on the socket only while the first-start files run.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  if [ "$POSTGRES_DB" != "postgres" ]; then
    # From standard input: psql fills in :"db" there (not in -c), quoted as an identifier.
    echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 --no-psqlrc \
      --username "$POSTGRES_USER" --dbname postgres --set db="$POSTGRES_DB"
  fi
  local file
  for file in /docker-entrypoint-initdb.d/*; do
    [ -e "$file" ] && run_init_file "$file"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initialise
fi
exec "$@"
