#!/usr/bin/env bash
# One entry point for a fresh machine (Debian bookworm, Python 3.11, Node 20, root):
#   ./dev.sh demo    render the default project, boot it natively, print its URLs
#   ./dev.sh test    run the whole test suite
#   ./dev.sh lint | render | bench     (the other nox sessions)
# It installs what is missing itself: Debian packages, uv, nox; nox then builds
# the Python environment of each session.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the test suite and the native boot need, each with a file
# that shows it is installed.
declare -A APT_MARKER=(
  [postgresql]="/usr/lib/postgresql/*/bin/initdb"
  [redis-server]="/usr/bin/redis-server"
  [rabbitmq-server]="/usr/sbin/rabbitmq-server"
  [git]="/usr/bin/git"
  [wrk]="/usr/bin/wrk"
  [nginx]="/usr/sbin/nginx"
  [chromium]="/usr/bin/chromium"
  [shellcheck]="/usr/bin/shellcheck"
)

install_apt_packages() {
  local missing=() package
  for package in "${!APT_MARKER[@]}"; do
    compgen -G "${APT_MARKER[$package]}" >/dev/null || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "dev.sh: installing Debian packages: ${missing[*]}" >&2
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # The packages' own services are not wanted: tests start throwaway servers.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  $sudo rm -f /usr/sbin/policy-rc.d
}

install_uv() {
  # Called as "python3 -m uv": a fresh pip install may not be on PATH yet (pyenv shims).
  python3 -m uv --version >/dev/null 2>&1 && return
  echo "dev.sh: installing uv" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv
}

session="${1:-}"
case "$session" in
  demo|test|lint|render|bench) ;;
  *) echo "usage: ./dev.sh demo|test|lint|render|bench [-- extra args]" >&2; exit 2 ;;
esac
shift
[ "${1:-}" = "--" ] && shift

install_apt_packages
install_uv
export UV_PYTHON_DOWNLOADS=never
# "test" is the whole suite: the linters, then pytest.
sessions=("$session"); [ "$session" = test ] && sessions=(lint tests)
exec python3 -m uv tool run --quiet --from 'nox[uv]>=2024.10' nox --default-venv-backend uv --sessions "${sessions[@]}" -- "$@"
