#!/bin/sh
# stackplate stand-in for the official rabbitmq image's entrypoint: our own
# script for the part of its documented contract that stackplate projects use.
set -eu

if [ "${1:-}" = "rabbitmq-server" ] && [ "$(id -u)" = "0" ]; then
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" "$@"
fi
exec "$@"
