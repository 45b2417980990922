"""redis (Debian variants): Debian's Redis server and redis-cli with an entrypoint of ours.

The contract honoured, from the official image's Dockerfile and entrypoint:
``redis-server`` as the command (a first argument starting with ``-`` or ending
in ``.conf`` goes to it), ``/data`` as the working directory owned by the redis
user (uid 999), and protected mode off by default (the official build patches
that default; Debian's binary keeps it on, so the entrypoint passes it).
"""

from __future__ import annotations

from stackplate.standins.recipe import Context, Part, Tool, apt_install, debian_parts

REPOSITORIES = ("redis",)
DEFAULT_RELEASE = "bookworm"
UPSTREAM = "docker-library/redis 7.4/debian/Dockerfile: make install puts redis-cli in /usr/local/bin"
BASE = "debian:bookworm-slim, the official image's base (dash, coreutils and grep are essential)"
TOOLS = (
    Tool("redis-cli", UPSTREAM),
    Tool("sh", BASE),
    Tool("cat", BASE),
    Tool("grep", BASE),
)


def prepare(context: Context) -> list[Part]:
    release = context.reference.debian_release(DEFAULT_RELEASE)
    versions = context.debian_versions(release, ["redis-server", "redis-tools"])
    context.copy_file("redis-entrypoint.sh", "docker-entrypoint.sh")
    context.write(
        "Dockerfile",
        f"FROM {context.debian_base(release)}\n"
        "RUN groupadd --system --gid 999 redis \\\n"
        "    && useradd --system --uid 999 --gid redis --home-dir /data --no-create-home redis\n"
        + apt_install(versions)
        + "RUN mkdir /data && chown redis:redis /data\n"
        "WORKDIR /data\n"
        "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
        'ENTRYPOINT ["docker-entrypoint.sh"]\n'
        "EXPOSE 6379\n"
        'CMD ["redis-server"]\n',
    )
    return [
        *debian_parts(release, versions, {"redis-server": "Redis server", "redis-tools": "redis-cli"}),
        Part("entrypoint", "stackplate", "our docker-entrypoint.sh (redis user, protected mode off)"),
    ]
