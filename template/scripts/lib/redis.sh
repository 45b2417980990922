# shellcheck shell=bash
# Redis connection URLs, for backup-redis.sh and restore-redis.sh: sourced, never run.
# Needs url_decode from common.sh.

# redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] -> redis_user, redis_password, redis_host, redis_port
# (the password, when the URL has none, from REDIS_PASSWORD or REDIS_PASSWORD_FILE)
# (globals: the caller reads them)
# shellcheck disable=SC2034
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
    # A URL without a password: REDIS_PASSWORD, or the file REDIS_PASSWORD_FILE names.
    if [[ -z $redis_password ]]; then
        secret_from_file REDIS_PASSWORD
        redis_password=${REDIS_PASSWORD:-}
    fi
}
