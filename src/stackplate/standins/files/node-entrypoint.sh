#!/bin/sh
# stackplate stand-in for the official node image's entrypoint: our own script.
# Arguments that are options, or not a command, are given to node.
set -e
if [ "${1#-}" != "${1:-}" ] || [ -z "$(command -v "${1:-}")" ] || { [ -f "${1:-}" ] && ! [ -x "${1:-}" ]; }; then
  set -- node "$@"
fi
exec "$@"
