# shellcheck shell=bash
# Shared by the scripts in scripts/: sourced, never run. (bash)

# Print "<script name without .sh>: MESSAGE" on stderr and exit 1.
die() {
    local script=${0##*/}
    echo "${script%.sh}: $*" >&2
    exit 1
}

# How many arguments: the length of an array, as $(count "${array[@]}").
count() {
    echo "$#"
}

# %XX escapes of a URL part, decoded.
url_decode() {
    local value=${1//+/ }
    printf '%b' "${value//%/\\x}"
}
