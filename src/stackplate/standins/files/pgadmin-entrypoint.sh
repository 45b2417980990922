#!/bin/bash
# stackplate stand-in for the dpage/pgadmin4 image's entrypoint: our own script
# for the part of its documented contract that stackplate projects use.
#   PGADMIN_DEFAULT_EMAIL / PGADMIN_DEFAULT_PASSWORD[_FILE]  the first user (required on first start)
#   PGADMIN_CONFIG_<NAME>=<python value>   written once into config_distro.py as NAME = value
#   PGADMIN_SERVER_JSON_FILE               servers loaded on first start (default /pgadmin4/servers.json)
#   PGADMIN_LISTEN_ADDRESS / PGADMIN_LISTEN_PORT / GUNICORN_THREADS  where and how gunicorn serves
# Not stood in: TLS, unix sockets, an external config database, postfix.
set -euo pipefail

if [ -n "${PGADMIN_DEFAULT_PASSWORD_FILE:-}" ] && [ -z "${PGADMIN_DEFAULT_PASSWORD:-}" ]; then
  PGADMIN_DEFAULT_PASSWORD="$(<"$PGADMIN_DEFAULT_PASSWORD_FILE")"
  export PGADMIN_DEFAULT_PASSWORD
fi

distro=/pgadmin4/config_distro.py
if [ ! -s "$distro" ]; then
  {
    echo "CA_FILE = '/etc/ssl/certs/ca-certificates.crt'"
    echo "LOG_FILE = '/dev/null'"
    while IFS='=' read -r name _; do
      echo "${name#PGADMIN_CONFIG_} = ${!name}"
    done < <(env | grep '^PGADMIN_CONFIG_' || true)
  } >"$distro"
fi

if [ ! -f /var/lib/pgadmin/pgadmin4.db ]; then
  if [ -z "${PGADMIN_DEFAULT_EMAIL:-}" ] || [ -z "${PGADMIN_DEFAULT_PASSWORD:-}" ]; then
    echo "pgadmin stand-in: set PGADMIN_DEFAULT_EMAIL and PGADMIN_DEFAULT_PASSWORD" >&2
    exit 1
  fi
  export PGADMIN_SETUP_EMAIL="$PGADMIN_DEFAULT_EMAIL" PGADMIN_SETUP_PASSWORD="$PGADMIN_DEFAULT_PASSWORD"
  python3 /pgadmin4/run_pgadmin.py  # importing the app creates its database
  servers="${PGADMIN_SERVER_JSON_FILE:-/pgadmin4/servers.json}"
  if [ -f "$servers" ]; then
    if [ "${PGADMIN_CONFIG_SERVER_MODE:-}" = "False" ]; then
      python3 /pgadmin4/setup.py load-servers "$servers"
    else
      python3 /pgadmin4/setup.py load-servers "$servers" --user "$PGADMIN_DEFAULT_EMAIL"
    fi
  fi
fi

cd /pgadmin4
exec gunicorn --bind "${PGADMIN_LISTEN_ADDRESS:-[::]}:${PGADMIN_LISTEN_PORT:-80}" -w 1 \
  --threads "${GUNICORN_THREADS:-25}" --access-logfile - run_pgadmin:app
