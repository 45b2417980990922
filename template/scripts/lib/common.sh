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

# NAME from the file NAME_FILE names (a Compose secret, e.g. config/secrets/...), unless NAME is set.
# Trailing newlines are dropped, as $(<file) does.
secret_from_file() {
    local name=$1 file_var="${1}_FILE"
    if [[ -z ${!name:-} && -n ${!file_var:-} ]]; then
        [[ -r ${!file_var} ]] || die "$file_var: cannot read ${!file_var}"
        printf -v "$name" '%s' "$(<"${!file_var}")"
    fi
}
