"""postgres (Debian variants): Debian's PostgreSQL server with an entrypoint of ours.

The contract honoured, from the official image's documentation and entrypoint:
``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB`` (each also as ``<NAME>_FILE``),
``POSTGRES_INITDB_ARGS``,
``/docker-entrypoint-initdb.d`` (``*.sh``, ``*.sql``, ``*.sql.gz``) on the first
start only, data under ``PGDATA`` owned by the postgres user (uid 999),
``listen_addresses='*'`` with password (scram-sha-256) logins from the network,
UTF8 databases (locale C.UTF-8 where the official image uses en_US.utf8), and
the server's tools on ``PATH``.
"""

from __future__ import annotations

from stackplate.standins.recipe import Context, Part, Tool, apt_install, debian_parts

REPOSITORIES = ("postgres",)
DEFAULT_RELEASE = "trixie"
UPSTREAM = "docker-library/postgres 17/<release>/Dockerfile installs postgresql-$PG_MAJOR"
TOOLS = (
    Tool("pg_isready", UPSTREAM),
    Tool("psql", UPSTREAM),
    Tool("pg_dump", UPSTREAM),
    Tool("pg_restore", UPSTREAM),
    Tool("sh", "debian:<release>-slim, the official image's base (dash)"),
)


def prepare(context: Context) -> list[Part]:
    major = context.reference.version().split(".")[0]
    release = context.reference.debian_release(DEFAULT_RELEASE)
    package = f"postgresql-{major}"
    versions = context.debian_versions(release, [package])
    context.copy_file("postgres-entrypoint.sh", "docker-entrypoint.sh")
    context.write(
        "Dockerfile",
        f"FROM {context.debian_base(release)}\n"
        # The same ids as the official image, so volumes move between the two.
        "RUN groupadd --system --gid 999 postgres \\\n"
        "    && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql"
        " --shell /bin/bash postgres \\\n"
        # Debian would create a cluster of its own on install; the entrypoint makes ours.
        "    && mkdir -p /etc/postgresql-common/createcluster.d \\\n"
        "    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/stand-in.conf\n"
        + apt_install(versions)
        # A UTF-8 locale, so initdb makes UTF8 databases as the official image does
        # (it sets en_US.utf8); Debian's minimal root has C.UTF-8 built in.
        + f"ENV LANG=C.UTF-8 PG_MAJOR={major} PGDATA=/var/lib/postgresql/data \\\n"
        f"    PATH=$PATH:/usr/lib/postgresql/{major}/bin\n"
        'RUN mkdir -p /var/run/postgresql /docker-entrypoint-initdb.d "$PGDATA" \\\n'
        '    && chown postgres:postgres /var/run/postgresql "$PGDATA" \\\n'
        '    && chmod 3777 /var/run/postgresql && chmod 0700 "$PGDATA"\n'
        "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
        'ENTRYPOINT ["docker-entrypoint.sh"]\n'
        "STOPSIGNAL SIGINT\n"
        "EXPOSE 5432\n"
        'CMD ["postgres"]\n',
    )
    return [
        *debian_parts(release, versions, {package: "PostgreSQL server and client"}),
        Part("entrypoint", "stackplate", "our docker-entrypoint.sh (initdb, first-start scripts)"),
    ]
