"""rabbitmq (management variants): Debian's RabbitMQ with the management plugin.

The contract honoured, from the official image's Dockerfiles and entrypoint:
``rabbitmq-server`` as the command, run as the rabbitmq user (uid 999) with
its data (and ``HOME``, so the CLI tools find the Erlang cookie) in
``/var/lib/rabbitmq``; the default user from ``RABBITMQ_DEFAULT_USER`` and
``RABBITMQ_DEFAULT_PASS`` (RabbitMQ reads them itself); the management plugin
enabled; ``loopback_users.guest = false`` and console logging, as the
official ``conf.d/10-defaults.conf`` sets. The real image is Ubuntu-based with
RabbitMQ under ``/opt/rabbitmq``; the stand-in is Debian with its package's
paths, both on ``PATH``.
"""

from __future__ import annotations

from stackplate.standins.recipe import Context, Part, Tool, apt_install, debian_parts

REPOSITORIES = ("rabbitmq",)
DEFAULT_RELEASE = "trixie"
UPSTREAM = "docker-library/rabbitmq 4.1/ubuntu/Dockerfile: the generic-unix tarball's sbin on PATH"
TOOLS = (Tool("rabbitmq-diagnostics", UPSTREAM), Tool("rabbitmqctl", UPSTREAM))

DEFAULTS_CONF = """\
# stackplate stand-in: the settings the official image's conf.d/10-defaults.conf makes.
loopback_users.guest = false
log.console = true
"""


def prepare(context: Context) -> list[Part]:
    release = DEFAULT_RELEASE  # the official tags name no Debian release (Ubuntu-based)
    versions = context.debian_versions(release, ["rabbitmq-server"])
    context.copy_file("rabbitmq-entrypoint.sh", "docker-entrypoint.sh")
    context.write("10-defaults.conf", DEFAULTS_CONF)
    context.write(
        "Dockerfile",
        f"FROM {context.debian_base(release)}\n"
        "RUN groupadd --system --gid 999 rabbitmq \\\n"
        "    && useradd --system --uid 999 --gid rabbitmq --home-dir /var/lib/rabbitmq"
        " --no-create-home rabbitmq\n"
        + apt_install(versions)
        + "COPY 10-defaults.conf /etc/rabbitmq/conf.d/10-defaults.conf\n"
        "RUN rabbitmq-plugins enable --offline rabbitmq_management \\\n"
        "    && mkdir -p /var/lib/rabbitmq && chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq\n"
        "ENV HOME=/var/lib/rabbitmq RABBITMQ_DATA_DIR=/var/lib/rabbitmq LANG=C.UTF-8\n"
        "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
        'ENTRYPOINT ["docker-entrypoint.sh"]\n'
        "EXPOSE 4369 5672 15672 25672\n"
        'CMD ["rabbitmq-server"]\n',
    )
    return [
        *debian_parts(release, versions, {"rabbitmq-server": "RabbitMQ (management plugin on)"}),
        Part("entrypoint", "stackplate", "our docker-entrypoint.sh (rabbitmq user, data ownership)"),
    ]
