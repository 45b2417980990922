#!/bin/sh
# stackplate stand-in for the official redis image's entrypoint: our own script
# for the part of its documented contract that stackplate projects use.
set -eu

case "${1:-}" in
  -*|*.conf) set -- redis-server "$@" ;;
esac
if [ "${1:-}" != "redis-server" ]; then
  exec "$@"
fi

if [ "$(id -u)" = "0" ]; then
  find . ! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# The official build makes protected mode default to off; Debian's does not.
# Given first (after a config file), so that the caller's own options still win.
shift
case "${1:-}" in
  *.conf) config="$1"; shift; set -- redis-server "$config" --protected-mode no "$@" ;;
  *) set -- redis-server --protected-mode no "$@" ;;
esac
umask 0077
exec "$@"
