"""Template 0.2.0 keeps the secrets in config/.env; earlier versions kept them in .env.

Copier runs this in the project before it updates across 0.2.0 (see
``_migrations`` in copier.yml). Moving the file, rather than letting the new
version render a fresh one, keeps the project's own secrets: the database
password must match the data already in the postgres volume. Stdlib only.
"""

from __future__ import annotations

import os
from pathlib import Path


def main() -> None:
    old, new = Path(".env"), Path("config") / ".env"
    if not old.is_file():
        return  # nothing to migrate: created after the move, or already moved
    if new.exists():
        print(f"migration 0.2.0: both {old} and {new} exist; keeping both, merge them by hand")
        return
    new.parent.mkdir(exist_ok=True)
    os.replace(old, new)
    print(f"migration 0.2.0: moved {old} to {new}, secrets unchanged")


if __name__ == "__main__":
    main()
