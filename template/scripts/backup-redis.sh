#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Copy Redis's RDB snapshot (redis-cli --rdb) to a timestamped file.
# Run with --help for the settings; docs/operations/backup-restore.md explains what
# Redis holds in this stack and when a backup of it is worth having.
set -euo pipefail

LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=lib/common.sh
source "$LIB/common.sh"
# shellcheck source=lib/redis.sh
source "$LIB/redis.sh"

usage() {
    cat <<'EOF'
Usage: scripts/backup-redis.sh

Ask the Redis server for a fresh snapshot of all its databases (redis-cli
--rdb, the replication protocol: no file on the server is touched) and write
it to BACKUP_DIR/redis-<UTC time>.rdb; check that it is an RDB file and print
its path. scripts/restore-redis.sh loads such a file into a Redis server.

Settings:
  REDIS_URL     redis://[[USER]:PASSWORD@]HOST:PORT[/DB]
                (default redis://127.0.0.1:6379/0; the snapshot holds every DB)
  REDIS_PASSWORD (or REDIS_PASSWORD_FILE, a file holding it) when REDIS_URL has none;
                the stack's is config/secrets/redis_password
  BACKUP_DIR    where the files go (default ./backups; created with a .gitignore)
  BACKUP_KEEP   keep only the newest N snapshots (default: all)
  REDIS_CLI     the redis-cli command (default redis-cli)

Example (the development stack):
  REDIS_PASSWORD_FILE=config/secrets/redis_password REDIS_URL=redis://127.0.0.1:6379/0 scripts/backup-redis.sh
EOF
}

main() {
    case ${1:-} in
        -h | --help)
            usage
            exit 0
            ;;
        "") ;;
        *) die "unexpected argument $1 (see --help)" ;;
    esac

    local url=${REDIS_URL:-redis://127.0.0.1:6379/0}
    local backup_dir=${BACKUP_DIR:-./backups}
    local keep=${BACKUP_KEEP:-}
    [[ -z $keep || $keep =~ ^[1-9][0-9]*$ ]] || die "BACKUP_KEEP must be a whole number above 0, not '$keep'"
    [[ $url == redis://* || $url == rediss://* ]] || die "REDIS_URL must start with redis:// or rediss://"
    local -a redis_cli
    read -r -a redis_cli <<<"${REDIS_CLI:-redis-cli}"
    command -v "${redis_cli[0]}" >/dev/null || die "${redis_cli[0]} not found: install redis-tools or set REDIS_CLI"
    parse_redis_url "$url"
    # The password goes to redis-cli through the environment, never on a command line.
    local -a connect=(-h "$redis_host" -p "$redis_port")
    if [[ $url == rediss://* ]]; then
        connect+=(--tls)
    fi
    if [[ -n $redis_user ]]; then
        connect+=(--user "$redis_user")
    fi
    if [[ -n $redis_password ]]; then
        export REDISCLI_AUTH=$redis_password
    fi

    if [[ ! -d $backup_dir ]]; then
        mkdir -p "$backup_dir"
        printf '*\n' >"$backup_dir/.gitignore"
    fi
    umask 077 # the snapshot holds refresh tokens (hashed) and cached user data

    local file magic
    file="$backup_dir/redis-$(date -u +%Y%m%dT%H%M%SZ).rdb"
    while [[ -e $file ]]; do # one snapshot a second: names stay unique and sort by time
        sleep 1
        file="$backup_dir/redis-$(date -u +%Y%m%dT%H%M%SZ).rdb"
    done
    # redis-cli reports its progress on stderr; a failure leaves no finished-looking file.
    if ! "${redis_cli[@]}" "${connect[@]}" --rdb "$file.partial" >&2; then
        rm -f "$file.partial"
        die "redis-cli --rdb failed (is $redis_host:$redis_port reachable?)"
    fi
    magic=$(head -c 5 "$file.partial")
    if [[ ! -s $file.partial || $magic != REDIS ]]; then
        rm -f "$file.partial"
        die "the snapshot is not an RDB file"
    fi
    mv "$file.partial" "$file"
    echo "$file"

    if [[ -n $keep ]]; then
        local -a snapshots
        shopt -s nullglob
        snapshots=("$backup_dir"/redis-[0-9]*T[0-9]*Z.rdb)
        shopt -u nullglob
        local excess i
        excess=$(($(count "${snapshots[@]}") - keep))
        for ((i = 0; i < excess; i++)); do
            rm -f -- "${snapshots[i]}"
            echo "removed ${snapshots[i]} (BACKUP_KEEP=$keep)" >&2
        done
    fi
}

main "$@"
