"""scripts/generate_secrets.py, the rendered project's one way to make its secrets (Copier runs it too).

Each test works on its own copy of one rendered project, as an operator would
on a clone: the script is run the way the docs say, ``python3 scripts/generate_secrets.py``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import require_tool
from test_secrets import SECRET_FILES

SCRIPT = "scripts/generate_secrets.py"
# The default project's files: the passwords (as test_secrets lists them), and the files made from them.
PASSWORDS = set(SECRET_FILES)
DERIVED = {
    "redis_users.acl",
    "rabbitmq_default_user.conf",
    "dev_tests_postgres.env",
    "dev_tests_redis.env",
    "dev_tests_rabbitmq.env",
}


@pytest.fixture(scope="module")
def rendered(matrix_render) -> Path:
    """The default project, shared by the whole run: read-only (tests change a ``project`` copy)."""
    return matrix_render("defaults")


@pytest.fixture
def project(rendered, tmp_path) -> Path:
    """A copy of the rendered project, for one test to change."""
    return Path(shutil.copytree(rendered, tmp_path / "project", symlinks=True))


def run(project: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )


def files_of(project: Path) -> dict[str, str]:
    folder = project / "config" / "secrets"
    return {path.name: path.read_text() for path in folder.iterdir()}


def assert_consistent(files: dict[str, str]) -> None:
    """The servers check the same passwords the clients get."""
    digest = hashlib.sha256(files["redis_password"].encode()).hexdigest()
    assert files["redis_users.acl"] == f"user default on #{digest} ~* &* +@all\n"
    rabbit = files["rabbitmq_default_user.conf"]
    assert f"\ndefault_user = app\ndefault_pass = {files['rabbitmq_password']}\n" in rabbit
    postgres_url = f"postgresql://app:{files['postgres_password']}@postgres:5432/postgres"
    assert files["dev_tests_postgres.env"] == f"TEST_DATABASE_URL={postgres_url}\n"
    rabbitmq_url = f"amqp://app:{files['rabbitmq_password']}@rabbitmq:5672/"
    assert files["dev_tests_rabbitmq.env"] == f"TEST_RABBITMQ_URL={rabbitmq_url}\n"
    redis_url = f"redis://:{files['redis_password']}@redis:6379/0"
    assert files["dev_tests_redis.env"] == f"TEST_REDIS_URL={redis_url}\n"


def assert_nothing_printed_is_secret(result: subprocess.CompletedProcess, files: dict[str, str]) -> None:
    for name in PASSWORDS:
        assert files[name] not in result.stdout + result.stderr, f"{name} printed"


def test_copy_made_exactly_the_files_the_script_makes(rendered) -> None:
    """Copier's task is this script: the names, formats and mode a fresh project has."""
    files = files_of(rendered)
    assert set(files) == PASSWORDS | DERIVED
    assert_consistent(files)
    for path in (rendered / "config" / "secrets").iterdir():
        # 0644: Compose bind-mounts them into containers whose users do not own them.
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_a_fresh_clone_gets_every_secret_anew(project) -> None:
    before = files_of(project)
    shutil.rmtree(project / "config" / "secrets")
    result = run(project)
    assert result.returncode == 0, result.stderr
    after = files_of(project)
    assert set(after) == set(before)
    for name in PASSWORDS:
        assert after[name] != before[name], f"{name} was not made anew"
        assert len(after[name]) >= 24 and after[name] == after[name].strip(), name
    assert len({after[name] for name in PASSWORDS}) == len(PASSWORDS), "two secrets share a value"
    assert_consistent(after)
    assert_nothing_printed_is_secret(result, after)
    for path in (project / "config" / "secrets").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_existing_files_are_never_overwritten(project) -> None:
    folder = project / "config" / "secrets"
    (folder / "jwt_secret_key").write_text("mine")
    (folder / "redis_password").write_text("my-redis-password")
    for name in (
        "postgres_password",
        "dev_tests_postgres.env",
        "redis_users.acl",
        "rabbitmq_default_user.conf",
    ):
        (folder / name).unlink()
    # Kept byte for byte: every file but the dev tests' URLs, which follow their passwords.
    kept = {name: text for name, text in files_of(project).items() if not name.startswith("dev_tests_")}
    result = run(project)
    assert result.returncode == 0, result.stderr
    after = files_of(project)
    assert {name: after[name] for name in kept} == kept
    assert set(after) == PASSWORDS | DERIVED
    assert_consistent(after)  # the ACL made from the password that was kept
    created = "created postgres_password, dev_tests_postgres.env, dev_tests_redis.env, redis_users.acl, rabbitmq_default_user.conf"
    assert created in result.stdout
    # Nothing missing: nothing changes, nothing is said.
    again = run(project)
    assert again.returncode == 0 and again.stdout == "" and again.stderr == ""
    assert files_of(project) == after


def test_a_missing_rabbitmq_password_is_taken_from_the_broker_file(project) -> None:
    """The broker's volume holds the password of its conf file: the clients must get that one."""
    before = files_of(project)
    (project / "config" / "secrets" / "rabbitmq_password").unlink()
    assert run(project).returncode == 0
    assert files_of(project) == before


def test_an_acl_without_its_password_is_refused(project) -> None:
    """Redis keeps only the hash: a new password would lock the clients out, so say so instead."""
    (project / "config" / "secrets" / "redis_password").unlink()
    (project / "config" / "secrets" / "dev_tests_redis.env").unlink()  # it holds it in clear
    before = files_of(project)
    result = run(project)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "redis_users.acl exists without" in result.stderr
    assert "--rotate redis_password" in result.stderr
    assert files_of(project) == before


def test_rotate_replaces_one_secret_and_what_is_made_from_it(project) -> None:
    before = files_of(project)
    result = run(project, "--rotate", "redis_password")
    assert result.returncode == 0, result.stderr
    after = files_of(project)
    assert after["redis_password"] != before["redis_password"]
    assert after["redis_users.acl"] != before["redis_users.acl"]
    assert_consistent(after)
    unchanged = set(before) - {"redis_password", "redis_users.acl", "dev_tests_redis.env"}
    assert {n: after[n] for n in unchanged} == {n: before[n] for n in unchanged}
    assert_nothing_printed_is_secret(result, after)
    assert result.stdout.count("\n") == 1 and "restart redis" in result.stdout
    assert not [p for p in (project / "config" / "secrets").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("name", ["redis_users.acl", "no_such_secret"])
def test_rotate_refuses_what_is_not_a_password(project, name) -> None:
    before = files_of(project)
    result = run(project, "--rotate", name)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert files_of(project) == before


def unprivileged(project: Path) -> tuple[Path, list[str]]:
    """Where and how to run the script as a user that cannot write a read-only folder.

    Root writes anywhere: as root, run it as nobody, from a copy nobody may read.
    """
    if os.geteuid() != 0:
        return project, [sys.executable]
    setpriv = require_tool("setpriv", "apt-get install util-linux: as root it drops the script to nobody")
    place = Path(tempfile.mkdtemp(prefix="generate-secrets-"))
    place.chmod(0o755)
    (place / "scripts").mkdir(mode=0o755)
    shutil.copy(project / SCRIPT, place / SCRIPT)
    (place / SCRIPT).chmod(0o755)
    shutil.copytree(project / "config" / "secrets", place / "config" / "secrets")
    (place / "config").chmod(0o755)
    python = "/usr/bin/python3"  # the standard library is all it needs
    return place, [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python]


def test_an_unwritable_folder_fails_in_one_line_and_leaves_nothing(project) -> None:
    place, command = unprivileged(project)
    folder = place / "config" / "secrets"
    (folder / "jwt_secret_key").unlink()
    folder.chmod(0o555)
    try:
        result = subprocess.run(
            [*command, SCRIPT], cwd=place, capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("generate_secrets: cannot write config/secrets/jwt_secret_key: ")
    assert {p.name for p in folder.iterdir()} == (PASSWORDS | DERIVED) - {"jwt_secret_key"}
    if place != project:
        shutil.rmtree(place)


def test_a_write_that_fails_midway_leaves_no_temporary_file(project) -> None:
    """A full disk (here: a file-size limit of 0) leaves neither a half-written secret nor its temp file."""
    folder = project / "config" / "secrets"
    (folder / "first_admin_password").unlink()

    def no_room() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    result = run(project, preexec_fn=no_room)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("generate_secrets: cannot write config/secrets/first_admin_password: ")
    assert {p.name for p in folder.iterdir()} == (PASSWORDS | DERIVED) - {"first_admin_password"}


def test_no_password_starts_with_a_dash(matrix_render, monkeypatch) -> None:
    """A leading "-" reads as options where an image passes the password on a command line."""
    script = matrix_render("defaults") / SCRIPT
    spec = importlib.util.spec_from_file_location("generate_secrets_under_test", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # the shared render stays as it is
    spec.loader.exec_module(module)
    drawn = iter(["-hFirst", "-tSecond", "Third-ok"])
    monkeypatch.setattr(module.secrets, "token_urlsafe", lambda nbytes: next(drawn))
    assert module.new_password("redis_password") == "Third-ok"
