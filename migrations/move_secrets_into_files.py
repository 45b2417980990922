"""Template 0.3.0 keeps each secret in a file of config/secrets/; 0.2.x kept them in config/.env.

Copier runs this in the project before it updates across 0.3.0 (see
``_migrations`` in copier.yml). The passwords already in the volumes must stay:
so the files the new version would generate afresh are written first from the
project's config/.env, and the update then keeps them: its task,
scripts/generate_secrets.py, only creates the files still missing (each app's
role password, Redis's, which did not exist before). config/.env itself is left as it is. Stdlib only.
"""

from __future__ import annotations

import os
from pathlib import Path

# config/secrets/<file> <- config/.env <variable>
FROM_ENV = {
    "postgres_password": "POSTGRES_PASSWORD",
    "rabbitmq_password": "RABBITMQ_DEFAULT_PASS",
    "jwt_secret_key": "JWT_SECRET_KEY",
    "first_admin_password": "FIRST_ADMIN_PASSWORD",
    "pgadmin_password": "PGADMIN_DEFAULT_PASSWORD",
}


def settings(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def write_new(path: Path, text: str) -> bool:
    """Write a file only its owner may change, unless it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return True


def main() -> None:
    env_file, folder = Path("config") / ".env", Path("config") / "secrets"
    if not env_file.is_file():
        return  # nothing to carry over
    values = settings(env_file)
    folder.mkdir(mode=0o700, exist_ok=True)
    written = [
        name
        for name, variable in FROM_ENV.items()
        if values.get(variable) and write_new(folder / name, values[variable])
    ]
    if values.get("RABBITMQ_DEFAULT_PASS"):
        user = values.get("RABBITMQ_DEFAULT_USER", "app")
        conf = f"default_user = {user}\ndefault_pass = {values['RABBITMQ_DEFAULT_PASS']}\n"
        if write_new(folder / "rabbitmq_default_user.conf", conf):
            written.append("rabbitmq_default_user.conf")
    if written:
        print(f"migration 0.3.0: secrets from {env_file} into {folder}/: {', '.join(written)}")
        print("migration 0.3.0: then create the app roles: see docs/services/postgres.md (10-app-roles.sh)")


if __name__ == "__main__":
    main()
