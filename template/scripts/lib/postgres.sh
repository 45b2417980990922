# shellcheck shell=bash
# PostgreSQL connection URLs, for backup-postgres.sh and restore-postgres.sh: sourced, never run.

# postgresql+driver://authority/old?query -> postgresql://authority/NEW?query
url_with_database() {
    local url=$1 database=$2 scheme rest authority query=""
    scheme=${url%%://*}
    scheme=${scheme%%+*}
    rest=${url#*://}
    authority=${rest%%/*}
    if [[ $rest == *\?* ]]; then
        query="?${rest#*\?}"
        authority=${authority%%\?*}
    fi
    printf '%s://%s/%s%s' "$scheme" "$authority" "$database" "$query"
}

database_of_url() {
    local rest=${1#*://}
    rest=${rest%%\?*}
    if [[ $rest == */* ]]; then
        printf '%s' "${rest#*/}"
    fi
}
