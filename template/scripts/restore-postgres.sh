#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Restore a dump made by backup-postgres.sh into a fresh (empty) database.
# Run with --help for the settings; docs/operations/backup-restore.md has the restore drill.
set -euo pipefail

LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=lib/common.sh
source "$LIB/common.sh"
# shellcheck source=lib/postgres.sh
source "$LIB/postgres.sh"

usage() {
    cat <<'EOF'
Usage: scripts/restore-postgres.sh [--create] DUMP_FILE [DATABASE]

Restore DUMP_FILE (pg_dump --format=custom, as backup-postgres.sh writes it)
into DATABASE (default: the database of the connection settings) with
pg_restore --no-owner --no-privileges --single-transaction --exit-on-error:
every object belongs to the connecting user, and a failed restore leaves the
database as it was. The database must be empty; the script refuses otherwise.

Options:
  --create            create DATABASE first when it does not exist
                      (connects to the maintenance database "postgres")
  -h, --help          this text

Connection (the first that is set wins):
  DATABASE_URL        postgresql://USER:PASSWORD@HOST:PORT/DATABASE
                      (a DATABASE argument replaces the URL's database)
  POSTGRES_HOST       default 127.0.0.1
  POSTGRES_PORT       default 5432
  POSTGRES_USER       default postgres
  POSTGRES_PASSWORD   default: none (or ~/.pgpass)
  POSTGRES_PASSWORD_FILE  a file holding it (what the postgres container has:
                      /run/secrets/postgres_password; on the host
                      config/secrets/postgres_password)
  DATABASE_NAME       default POSTGRES_DB, else postgres

Settings:
  PG_RESTORE          the pg_restore command (default pg_restore), as new as the
                      pg_dump that wrote the file
  PSQL                the psql command (default psql)
  Either may be "docker compose exec -T postgres pg_restore" (or psql): the dump
  is read from standard input, so it need not be inside the container.

Example (restore drill: a new database next to the live one):
  POSTGRES_USER=app POSTGRES_PASSWORD_FILE=config/secrets/postgres_password \
  scripts/restore-postgres.sh --create backups/api-20250101T020000Z.dump api_restored
EOF
}

# The --dbname value for DATABASE: a URL, or a plain name (libpq reads PG* variables).
connection() {
    if [[ -n ${DATABASE_URL:-} ]]; then
        url_with_database "$DATABASE_URL" "$1"
    else
        printf '%s' "$1"
    fi
}

main() {
    local create=false
    local -a positional=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            -h | --help)
                usage
                exit 0
                ;;
            --create) create=true ;;
            --) shift; positional+=("$@"); break ;;
            -*) die "unknown option $1 (see --help)" ;;
            *) positional+=("$1") ;;
        esac
        shift
    done
    local given
    given=$(count "${positional[@]}")
    [[ $given -ge 1 && $given -le 2 ]] || die "give DUMP_FILE [DATABASE] (see --help)"
    local dump=${positional[0]} database=${positional[1]:-}
    [[ -f $dump && -r $dump ]] || die "$dump is not a readable file"

    local -a pg_restore psql
    read -r -a pg_restore <<<"${PG_RESTORE:-pg_restore}"
    read -r -a psql <<<"${PSQL:-psql}"
    command -v "${pg_restore[0]}" >/dev/null || die "${pg_restore[0]} not found: install the PostgreSQL client or set PG_RESTORE"
    command -v "${psql[0]}" >/dev/null || die "${psql[0]} not found: install the PostgreSQL client or set PSQL"
    psql+=(--no-psqlrc --no-password --quiet --tuples-only --no-align --set=ON_ERROR_STOP=1)

    if [[ -z $database ]]; then
        if [[ -n ${DATABASE_URL:-} ]]; then
            database=$(database_of_url "$DATABASE_URL")
        else
            database=${DATABASE_NAME:-${POSTGRES_DB:-postgres}}
        fi
        [[ -n $database ]] || die "DATABASE_URL names no database: add /DATABASE or pass one"
    fi
    [[ $database =~ ^[A-Za-z0-9_.-]+$ ]] || die "'$database' is not a database name this script handles"
    if [[ -z ${DATABASE_URL:-} ]]; then
        export PGHOST=${POSTGRES_HOST:-127.0.0.1} PGPORT=${POSTGRES_PORT:-5432}
        export PGUSER=${POSTGRES_USER:-postgres}
        secret_from_file POSTGRES_PASSWORD
        if [[ -n ${POSTGRES_PASSWORD:-} ]]; then
            export PGPASSWORD=$POSTGRES_PASSWORD
        fi
    fi

    "${pg_restore[@]}" --list <"$dump" >/dev/null || die "$dump is not a dump pg_restore can read"

    if $create; then
        "${psql[@]}" --dbname="$(connection postgres)" --set=db="$database" <<'SQL' >/dev/null
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
    fi

    local target relations
    target=$(connection "$database")
    relations=$("${psql[@]}" --dbname="$target" <<'SQL'
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%';
SQL
    ) || die "cannot connect to database $database (use --create to create it)"
    [[ $relations == 0 ]] || die "database $database is not empty ($relations relations): restore into a new database"

    "${pg_restore[@]}" --no-owner --no-privileges --single-transaction --exit-on-error \
        --no-password --dbname="$target" <"$dump" || die "pg_restore into $database failed; nothing was restored"
    echo "restored $dump into $database"
}

main "$@"
