"""nginxinc/nginx-unprivileged (Debian variants): Debian's nginx, run as uid 101 on port 8080.

The contract honoured, from the official image's Dockerfile and entrypoint
scripts: the nginx user (uid/gid 101) with ``/etc/nginx`` writable by it, the
pid file and temporary paths under ``/tmp``, logs to the container's output,
``/etc/nginx/templates/*.template`` filled in from the defined environment
variables into ``/etc/nginx/conf.d`` when the command is nginx, and curl (the
real image installs it beside gettext-base).
"""

from __future__ import annotations

from stackplate.standins.recipe import Context, Part, Tool, apt_install, debian_parts

REPOSITORIES = ("nginxinc/nginx-unprivileged",)
DEFAULT_RELEASE = "trixie"
UPSTREAM = "nginx/docker-nginx-unprivileged mainline/debian/Dockerfile installs gettext-base curl"
TOOLS = (Tool("curl", UPSTREAM), Tool("envsubst", UPSTREAM), Tool("nginx", UPSTREAM))

NGINX_CONF = """\
# stackplate stand-in: nginx.conf for an unprivileged nginx (uid 101).
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /tmp/nginx.pid;

events {
    worker_connections 1024;
}

http {
    proxy_temp_path /tmp/proxy_temp;
    client_body_temp_path /tmp/client_temp;
    fastcgi_temp_path /tmp/fastcgi_temp;
    uwsgi_temp_path /tmp/uwsgi_temp;
    scgi_temp_path /tmp/scgi_temp;

    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
"""

DEFAULT_CONF = """\
server {
    listen 8080;
    root /usr/share/nginx/html;
}
"""


def prepare(context: Context) -> list[Part]:
    release = context.reference.debian_release(DEFAULT_RELEASE)
    packages = ["nginx", "gettext-base", "curl", "ca-certificates"]
    versions = context.debian_versions(release, packages)
    context.copy_file("nginx-entrypoint.sh", "docker-entrypoint.sh")
    context.write("nginx.conf", NGINX_CONF)
    context.write("default.conf", DEFAULT_CONF)
    context.write(
        "Dockerfile",
        f"FROM {context.debian_base(release)}\n"
        "RUN groupadd --system --gid 101 nginx \\\n"
        "    && useradd --system --uid 101 --gid nginx --home-dir /nonexistent"
        " --no-create-home --shell /bin/false nginx\n"
        + apt_install(versions)
        + "RUN rm -rf /etc/nginx/sites-enabled /etc/nginx/sites-available /etc/nginx/conf.d/* \\\n"
        "    && mkdir -p /etc/nginx/templates /usr/share/nginx/html /var/cache/nginx \\\n"
        "    && ln -sf /dev/stdout /var/log/nginx/access.log \\\n"
        "    && ln -sf /dev/stderr /var/log/nginx/error.log\n"
        "COPY nginx.conf /etc/nginx/nginx.conf\n"
        "COPY default.conf /etc/nginx/conf.d/default.conf\n"
        "COPY docker-entrypoint.sh /docker-entrypoint.sh\n"
        "RUN chown -R 101:0 /etc/nginx /var/cache/nginx && chmod -R g+w /etc/nginx /var/cache/nginx\n"
        "USER 101\n"
        "EXPOSE 8080\n"
        "STOPSIGNAL SIGQUIT\n"
        'ENTRYPOINT ["/docker-entrypoint.sh"]\n'
        'CMD ["nginx", "-g", "daemon off;"]\n',
    )
    return [
        *debian_parts(
            release,
            versions,
            {
                "nginx": "nginx",
                "gettext-base": "envsubst",
                "curl": "curl",
                "ca-certificates": "CA certificates",
            },
        ),
        Part("entrypoint", "stackplate", "our docker-entrypoint.sh (templates filled in by envsubst)"),
    ]
