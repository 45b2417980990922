#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Load an RDB snapshot (from backup-redis.sh) into a running Redis server.
# Run with --help for the settings; docs/operations/backup-restore.md has the details.
set -euo pipefail

LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=lib/common.sh
source "$LIB/common.sh"
# shellcheck source=lib/redis.sh
source "$LIB/redis.sh"
if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
    echo "restore-redis: needs bash 4.4 or newer (this is $BASH_VERSION)" >&2
    exit 1
fi

usage() {
    cat <<'EOF'
Usage: scripts/restore-redis.sh [--flush] RDB_FILE

Load RDB_FILE into the Redis server at REDIS_URL while it runs: a temporary
redis-server (on a private unix socket, no TCP port) opens a copy of the file,
and MIGRATE ... COPY REPLACE copies every key, with its TTL, into the same
database number on the target. Nothing on the target's disk is touched; its
own persistence (AOF/RDB) records the keys as they arrive.

The target must be empty (every database), unless --flush is given.

Options:
  --flush       FLUSHALL the target first (everything in it is lost)
  -h, --help    this text

Settings:
  REDIS_URL     the target: redis://[[USER]:PASSWORD@]HOST:PORT[/DB]
                (default redis://127.0.0.1:6379/0; rediss:// is not supported)
  REDIS_PASSWORD (or REDIS_PASSWORD_FILE, a file holding it) when REDIS_URL has none;
                the stack's is config/secrets/redis_password
  REDIS_CLI     the redis-cli command (default redis-cli)
  REDIS_SERVER  the redis-server command for the temporary server (default
                redis-server); it must be as new as the server that wrote the
                file (RDB format versions only move forward)

Keys whose names contain a line break are not restored (redis-cli --scan
prints one key a line).
EOF
}

main() {
    local flush=false
    local -a positional=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            -h | --help)
                usage
                exit 0
                ;;
            --flush) flush=true ;;
            -*) die "unknown option $1 (see --help)" ;;
            *) positional+=("$1") ;;
        esac
        shift
    done
    [[ $(count "${positional[@]}") -eq 1 ]] || die "give one RDB_FILE (see --help)"
    local rdb=${positional[0]} magic
    [[ -f $rdb && -r $rdb ]] || die "$rdb is not a readable file"
    magic=$(head -c 5 "$rdb")
    [[ $magic == REDIS ]] || die "$rdb is not an RDB file"

    local url=${REDIS_URL:-redis://127.0.0.1:6379/0}
    [[ $url == redis://* ]] || die "REDIS_URL must start with redis:// (MIGRATE cannot use TLS)"
    parse_redis_url "$url"
    local -a auth=()
    if [[ -n $redis_user && -n $redis_password ]]; then
        auth=(AUTH2 "$redis_user" "$redis_password")
    elif [[ -n $redis_password ]]; then
        auth=(AUTH "$redis_password")
    fi
    local host=$redis_host port=$redis_port

    local -a redis_cli redis_server
    read -r -a redis_cli <<<"${REDIS_CLI:-redis-cli}"
    read -r -a redis_server <<<"${REDIS_SERVER:-redis-server}"
    command -v "${redis_cli[0]}" >/dev/null || die "${redis_cli[0]} not found: install redis-tools or set REDIS_CLI"
    command -v "${redis_server[0]}" >/dev/null || die "${redis_server[0]} not found: install redis-server or set REDIS_SERVER"
    # The password goes to redis-cli through the environment, never on a command line.
    local -a target=("${redis_cli[@]}" -h "$host" -p "$port")
    if [[ -n $redis_user ]]; then
        target+=(--user "$redis_user")
    fi
    if [[ -n $redis_password ]]; then
        export REDISCLI_AUTH=$redis_password
    fi

    [[ $("${target[@]}" PING) == PONG ]] || die "the target $host:$port does not answer PING"
    if $flush; then
        "${target[@]}" FLUSHALL >/dev/null
    elif "${target[@]}" INFO keyspace | grep -q '^db[0-9]'; then
        die "the target $host:$port holds keys: restore into an empty server, or use --flush"
    fi

    # The temporary server: a copy of the file, a unix socket only, stopped on exit.
    local scratch pid
    scratch=$(mktemp -d)
    cp "$rdb" "$scratch/dump.rdb"
    "${redis_server[@]}" --port 0 --bind 127.0.0.1 --unixsocket "$scratch/redis.sock" --unixsocketperm 700 \
        --dir "$scratch" --dbfilename dump.rdb --save "" --appendonly no --daemonize no \
        --logfile "$scratch/redis.log" &
    pid=$!
    # shellcheck disable=SC2064 # expand now: the values are fixed
    trap "kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf '$scratch'" EXIT
    local -a source=(env -u REDISCLI_AUTH "${redis_cli[@]}" -s "$scratch/redis.sock")
    local tries=0
    until [[ $("${source[@]}" PING 2>/dev/null) == PONG ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 5 "$scratch/redis.log" >&2 || true
            die "the temporary redis-server could not load $rdb (is REDIS_SERVER older than the file?)"
        fi
        ((++tries <= 600)) || die "the temporary redis-server did not load $rdb within 60 s"
        sleep 0.1
    done

    local line db expected restored total=0 reply listing found
    local -a databases=() keys
    while IFS= read -r line; do
        line=${line%$'\r'}
        if [[ $line =~ ^db([0-9]+):keys=([0-9]+) ]]; then
            databases+=("${BASH_REMATCH[1]}:${BASH_REMATCH[2]}")
        fi
    done < <("${source[@]}" INFO keyspace)

    local entry i
    for entry in "${databases[@]}"; do
        db=${entry%%:*}
        expected=${entry#*:}
        listing=$("${source[@]}" -n "$db" --scan) || die "cannot list the keys of db$db in $rdb"
        keys=()
        if [[ -n $listing ]]; then
            mapfile -t keys <<<"$listing"
        fi
        found=$(count "${keys[@]}")
        for ((i = 0; i < found; i += 100)); do
            reply=$("${source[@]}" -n "$db" MIGRATE "$host" "$port" "" "$db" 10000 COPY REPLACE \
                "${auth[@]}" KEYS "${keys[@]:i:100}")
            [[ $reply == OK || $reply == NOKEY ]] || die "MIGRATE to $host:$port failed: $reply"
        done
        restored=$("${target[@]}" -n "$db" DBSIZE)
        echo "db$db: $restored of $expected keys" >&2
        total=$((total + found))
    done
    echo "restored $total keys from $rdb into $host:$port"
}

main "$@"
