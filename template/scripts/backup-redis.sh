#!/usr/bin/env bash
# Copy Redis's RDB snapshot (redis-cli --rdb) to a timestamped file.
# Run with --help for the settings; docs/operations/backup-restore.md explains what
# Redis holds in this stack and when a backup of it is worth having.
set -euo pipefail

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
  BACKUP_DIR    where the files go (default ./backups; created with a .gitignore)
  BACKUP_KEEP   keep only the newest N snapshots (default: all)
  REDIS_CLI     the redis-cli command (default redis-cli)

Example (the development stack):
  REDIS_URL=redis://127.0.0.1:6379/0 scripts/backup-redis.sh
EOF
}

die() {
    echo "backup-redis: $*" >&2
    exit 1
}

# %XX escapes of a URL part, decoded.
url_decode() {
    local value=${1//+/ }
    printf '%b' "${value//%/\\x}"
}

# redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] -> redis_user, redis_password, redis_host, redis_port
parse_redis_url() {
    local rest=${1#*://} userinfo="" hostport
    rest=${rest%%/*}
    redis_user="" redis_password=""
    if [[ $rest == *@* ]]; then
        userinfo=${rest%@*}
        hostport=${rest##*@}
        if [[ $userinfo == *:* ]]; then
            redis_user=$(url_decode "${userinfo%%:*}")
            redis_password=$(url_decode "${userinfo#*:}")
        else
            redis_password=$(url_decode "$userinfo")
        fi
    else
        hostport=$rest
    fi
    if [[ $hostport == \[*\]* ]]; then # [IPv6]:port
        redis_host=${hostport%%]*}
        redis_host=${redis_host#[}
        redis_port=${hostport##*]}
        redis_port=${redis_port#:}
    else
        redis_host=${hostport%%:*}
        redis_port=${hostport#"$redis_host"}
        redis_port=${redis_port#:}
    fi
    redis_host=${redis_host:-127.0.0.1}
    redis_port=${redis_port:-6379}
}

# How many arguments: the length of an array, as $(count "${array[@]}").
count() {
    echo "$#"
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
