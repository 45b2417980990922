"""dpage/pgadmin4: pgAdmin's own PyPI release, served by gunicorn as the image does.

The contract honoured, from pgAdmin's Dockerfile and entrypoint of the 9.x line:
the app in ``/pgadmin4`` (on ``PYTHONPATH``) with a Python environment in
``/venv``, run as uid 5050 (group root), its data under ``/var/lib/pgadmin``,
``config_distro.py`` filled once from ``PGADMIN_CONFIG_*``, the first user from
``PGADMIN_DEFAULT_EMAIL``/``PGADMIN_DEFAULT_PASSWORD``, servers from
``PGADMIN_SERVER_JSON_FILE`` on first start, and gunicorn on port 80 (Python
may bind it: the image sets the capability on its interpreter). The entrypoint
is our own script for that part.

Differences, said here and in the labels: the real image is Alpine with
CPython 3 and BusyBox (whose ``wget`` our healthcheck calls); the stand-in is
Debian trixie's CPython 3.13 with Debian's ``wget``. It ships no PostgreSQL
client tools (pg_dump, psql for pgAdmin's backup dialogs) and no postfix.
"""

from __future__ import annotations

from stackplate.standins.recipe import STAND_IN_CA_PATH, Context, Part, Tool, apt_install, debian_parts

REPOSITORIES = ("dpage/pgadmin4",)
DEFAULT_RELEASE = "trixie"
GUNICORN = "23.0.0"
UPSTREAM = "pgadmin-org/pgadmin4 Dockerfile: FROM python:3-alpine, whose BusyBox has wget"
TOOLS = (Tool("wget", UPSTREAM),)

# What the image's run_pgadmin.py does: import the app (SERVER_MODE from the config).
RUN_PGADMIN = "import builtins\n\nbuiltins.SERVER_MODE = None\n\nfrom pgAdmin4 import app  # noqa: E402\n"


def prepare(context: Context) -> list[Part]:
    version = context.reference.version()
    release = DEFAULT_RELEASE
    build_versions = context.debian_versions(release, ["python3", "python3-venv"])
    versions = context.debian_versions(release, ["python3", "libcap2-bin", "wget", "ca-certificates"])
    base = context.debian_base(release)
    wheel = f"pgadmin4-{version}-py3-none-any.whl"  # pip wants a wheel's own file name
    context.fetch_wheel(f"pgadmin4=={version}", context.directory).rename(context.directory / "pgadmin4.whl")
    context.copy_host_ca()
    context.copy_file("pgadmin-entrypoint.sh", "entrypoint.sh")
    context.write("run_pgadmin.py", RUN_PGADMIN)
    context.write(
        "Dockerfile",
        # Installed in a stage of its own: pip, the wheel and the host CA bundle stay there.
        f"FROM {base} AS install\n" + apt_install(build_versions) + f"COPY host-ca.crt {STAND_IN_CA_PATH}\n"
        f"COPY pgadmin4.whl /tmp/{wheel}\n"
        "RUN python3 -m venv /venv \\\n"
        f"    && SSL_CERT_FILE={STAND_IN_CA_PATH} /venv/bin/pip install --no-cache-dir \\\n"
        f"       --disable-pip-version-check /tmp/{wheel} gunicorn=={GUNICORN} \\\n"
        "    && mv /venv/lib/python3*/site-packages/pgadmin4 /pgadmin4 \\\n"
        "    && /venv/bin/pip uninstall --yes pip\n"
        f"FROM {base}\n" + apt_install(versions) + "COPY --from=install /venv /venv\n"
        "COPY --from=install /pgadmin4 /pgadmin4\n"
        "COPY run_pgadmin.py /pgadmin4/run_pgadmin.py\n"
        "COPY entrypoint.sh /entrypoint.sh\n"
        "ENV PATH=/venv/bin:$PATH PYTHONPATH=/pgadmin4\n"
        "WORKDIR /pgadmin4\n"
        "RUN useradd --system --uid 5050 --gid root --shell /usr/sbin/nologin pgadmin \\\n"
        "    && mkdir -p /run/pgadmin /var/lib/pgadmin \\\n"
        "    && chown pgadmin:root /run/pgadmin /var/lib/pgadmin \\\n"
        "    && chmod g=u /var/lib/pgadmin \\\n"
        "    && : >/pgadmin4/config_distro.py \\\n"
        "    && chown pgadmin:root /pgadmin4/config_distro.py \\\n"
        '    && setcap CAP_NET_BIND_SERVICE=+eip "$(readlink -f /usr/bin/python3)"\n'
        "USER 5050\n"
        "VOLUME /var/lib/pgadmin\n"
        "EXPOSE 80 443\n"
        'ENTRYPOINT ["/entrypoint.sh"]\n',
    )
    return [
        Part("pgAdmin 4", version, f"PyPI wheel pgadmin4=={version} and its dependencies, in /venv"),
        Part("gunicorn", GUNICORN, f"PyPI gunicorn=={GUNICORN}, as the image installs it"),
        *debian_parts(
            release,
            versions,
            {"python3": "CPython (real image: python:3-alpine)", "wget": "wget (real image: BusyBox)"},
        ),
        Part("entrypoint", "stackplate", "our entrypoint.sh (first user, config_distro.py, servers)"),
    ]
