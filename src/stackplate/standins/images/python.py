"""python (slim Debian variants): Debian's CPython at the paths the official image uses.

The official image builds CPython into ``/usr/local``; the stand-in installs
Debian's ``python3`` of the tag's release (trixie: 3.13) and links it as
``/usr/local/bin/python3`` and ``python``. It has no pip: stackplate's images
install with uv. The host's CA bundle is added, for build-time downloads only,
with ``SSL_CERT_FILE`` pointing at it (uv and Python's ssl read it).
"""

from __future__ import annotations

from stackplate.standins.recipe import STAND_IN_CA_PATH, Context, Part, Tool, apt_install, debian_parts

REPOSITORIES = ("python",)
DEFAULT_RELEASE = "trixie"
UPSTREAM = "docker-library/python 3.13/slim-trixie/Dockerfile: CPython in /usr/local, python symlink"
TOOLS = (Tool("python", UPSTREAM), Tool("python3", UPSTREAM), Tool("sh", "debian:slim (dash)"))


def prepare(context: Context) -> list[Part]:
    release = context.reference.debian_release(DEFAULT_RELEASE)
    versions = context.debian_versions(release, ["python3", "ca-certificates", "netbase", "tzdata"])
    context.copy_host_ca()
    context.write(
        "Dockerfile",
        f"FROM {context.debian_base(release)}\n"
        + apt_install(versions)
        + "RUN ln -s /usr/bin/python3 /usr/local/bin/python3 \\\n"
        "    && ln -s /usr/bin/python3 /usr/local/bin/python\n"
        f"COPY host-ca.crt {STAND_IN_CA_PATH}\n"
        f"ENV PATH=/usr/local/bin:$PATH SSL_CERT_FILE={STAND_IN_CA_PATH}\n"
        'CMD ["python3"]\n',
    )
    return [
        *debian_parts(
            release,
            versions,
            {
                "python3": "CPython",
                "ca-certificates": "CA certificates",
                "netbase": "netbase",
                "tzdata": "tzdata",
            },
        ),
        Part("host CA bundle", "this machine's", f"{STAND_IN_CA_PATH}, SSL_CERT_FILE (build-time downloads)"),
    ]
