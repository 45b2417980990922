#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Dump PostgreSQL databases with pg_dump, in the custom format, to timestamped files.
# Run with --help for the settings; docs/operations/backup-restore.md has the schedule
# and the restore drill.
set -euo pipefail

LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=lib/common.sh
source "$LIB/common.sh"
# shellcheck source=lib/postgres.sh
source "$LIB/postgres.sh"

usage() {
    cat <<'EOF'
Usage: scripts/backup-postgres.sh [DATABASE...]

Dump each DATABASE (default: the database of the connection settings) with
pg_dump --format=custom to BACKUP_DIR/<database>-<UTC time>.dump, check that
pg_restore can read the file, and print its path.

Connection (the first that is set wins):
  DATABASE_URL        postgresql://USER:PASSWORD@HOST:PORT/DATABASE
                      (a driver suffix such as postgresql+asyncpg:// is accepted;
                      a DATABASE argument replaces the URL's database)
  POSTGRES_HOST       default 127.0.0.1
  POSTGRES_PORT       default 5432
  POSTGRES_USER       default postgres
  POSTGRES_PASSWORD   default: none (or ~/.pgpass)
  POSTGRES_PASSWORD_FILE  a file holding it (what the postgres container has:
                      /run/secrets/postgres_password; on the host
                      config/secrets/postgres_password)
  DATABASE_NAME       default POSTGRES_DB, else postgres

Settings:
  BACKUP_DIR          where the dumps go (default ./backups; created with a
                      .gitignore so that dumps are never committed)
  BACKUP_KEEP         keep only the newest N dumps of each database (default: all)
  PG_DUMP             the pg_dump command (default pg_dump). It must be as new as
                      the server: e.g. /usr/lib/postgresql/17/bin/pg_dump, or
                      "docker compose exec -T postgres pg_dump" (then give
                      DATABASE_URL as the container sees the server).
  PG_RESTORE          the pg_restore command used to check each dump (default
                      pg_restore; same rules as PG_DUMP)

Example (the development stack, database "api"):
  POSTGRES_USER=app POSTGRES_PASSWORD_FILE=config/secrets/postgres_password \
  POSTGRES_PORT=5432 scripts/backup-postgres.sh api
EOF
}

main() {
    local arg
    for arg in "$@"; do
        case $arg in
            -h | --help)
                usage
                exit 0
                ;;
            -*) die "unknown option $arg (see --help)" ;;
        esac
    done

    local backup_dir=${BACKUP_DIR:-./backups}
    local keep=${BACKUP_KEEP:-}
    [[ -z $keep || $keep =~ ^[1-9][0-9]*$ ]] || die "BACKUP_KEEP must be a whole number above 0, not '$keep'"
    local -a pg_dump pg_restore
    read -r -a pg_dump <<<"${PG_DUMP:-pg_dump}"
    read -r -a pg_restore <<<"${PG_RESTORE:-pg_restore}"
    command -v "${pg_dump[0]}" >/dev/null || die "${pg_dump[0]} not found: install the PostgreSQL client or set PG_DUMP"
    command -v "${pg_restore[0]}" >/dev/null || die "${pg_restore[0]} not found: install the PostgreSQL client or set PG_RESTORE"

    local -a databases=("$@")
    if [[ $# -eq 0 ]]; then
        if [[ -n ${DATABASE_URL:-} ]]; then
            databases=("$(database_of_url "$DATABASE_URL")")
        else
            databases=("${DATABASE_NAME:-${POSTGRES_DB:-postgres}}")
        fi
        [[ -n ${databases[0]} ]] || die "DATABASE_URL names no database: add /DATABASE or pass one"
    fi
    if [[ -z ${DATABASE_URL:-} ]]; then
        # libpq reads these; nothing secret appears on a command line.
        export PGHOST=${POSTGRES_HOST:-127.0.0.1} PGPORT=${POSTGRES_PORT:-5432}
        export PGUSER=${POSTGRES_USER:-postgres}
        secret_from_file POSTGRES_PASSWORD
        if [[ -n ${POSTGRES_PASSWORD:-} ]]; then
            export PGPASSWORD=$POSTGRES_PASSWORD
        fi
    fi

    if [[ ! -d $backup_dir ]]; then
        mkdir -p "$backup_dir"
        printf '*\n' >"$backup_dir/.gitignore"
    fi
    umask 077 # dumps hold every row, password hashes included

    local database file target
    for database in "${databases[@]}"; do
        [[ $database =~ ^[A-Za-z0-9_.-]+$ ]] || die "'$database' is not a database name this script handles"
        if [[ -n ${DATABASE_URL:-} ]]; then
            target=$(url_with_database "$DATABASE_URL" "$database")
        else
            target=$database
        fi
        file="$backup_dir/$database-$(date -u +%Y%m%dT%H%M%SZ).dump"
        while [[ -e $file ]]; do # one dump a second: names stay unique and sort by time
            sleep 1
            file="$backup_dir/$database-$(date -u +%Y%m%dT%H%M%SZ).dump"
        done
        # Write to a temporary name: a dump that stopped half-way never looks finished.
        if ! "${pg_dump[@]}" --format=custom --compress=6 --no-password --dbname="$target" >"$file.partial"; then
            rm -f "$file.partial"
            die "pg_dump of $database failed"
        fi
        if ! "${pg_restore[@]}" --list <"$file.partial" >/dev/null; then
            rm -f "$file.partial"
            die "pg_restore cannot read the dump of $database"
        fi
        mv "$file.partial" "$file"
        echo "$file"
        if [[ -n $keep ]]; then
            prune "$backup_dir" "$database" "$keep"
        fi
    done
}

# Keep the newest KEEP dumps of DATABASE (the names sort by time).
prune() {
    local dir=$1 database=$2 keep=$3
    local -a dumps
    shopt -s nullglob
    dumps=("$dir/$database"-[0-9]*T[0-9]*Z.dump)
    shopt -u nullglob
    local excess i
    excess=$(($(count "${dumps[@]}") - keep))
    for ((i = 0; i < excess; i++)); do
        rm -f -- "${dumps[i]}"
        echo "removed ${dumps[i]} (BACKUP_KEEP=$keep)" >&2
    done
}

main "$@"
