#!/bin/sh
# stackplate stand-in for the nginx-unprivileged image's entrypoint: our own
# script for the part of its documented contract that stackplate projects use.
# When the command is nginx, every /etc/nginx/templates/NAME.template becomes
# /etc/nginx/conf.d/NAME with the environment variables that are defined
# filled in; any other $name (nginx's own variables) stays as it is.
set -eu

templates="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
output="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"

fill_templates() {
  [ -d "$templates" ] || return 0
  # The names of the defined variables, as envsubst's SHELL-FORMAT: "${A} ${B} ...".
  defined="$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')"
  find "$templates" -follow -type f -name "*$suffix" | while read -r template; do
    relative="${template#"$templates"/}"
    target="$output/${relative%"$suffix"}"
    mkdir -p "$(dirname "$target")"
    envsubst "$defined" <"$template" >"$target"
  done
}

if [ "${1:-}" = "nginx" ] || [ "${1:-}" = "nginx-debug" ]; then
  fill_templates
fi
exec "$@"
