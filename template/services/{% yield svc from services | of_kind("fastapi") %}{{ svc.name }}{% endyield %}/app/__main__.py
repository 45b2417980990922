"""``python -m app [--reload]``: serve on $PORT; ``python -m app migrate``: alembic upgrade head."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import ValidationError

ROOT = Path(__file__).resolve().parent.parent


def alembic_config():
    """alembic.ini with absolute paths, whatever the working directory."""
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    # ConfigParser interpolates "%": escape it in paths.
    config.set_main_option("script_location", str(ROOT / "alembic").replace("%", "%%"))
    return config


def migrate() -> None:
    from alembic import command
    from app.core.config import DatabaseSettings
    from app.core.logging import configure_logging

    configure_logging(os.environ.get("SERVICE_NAME", "api"), os.environ.get("LOG_LEVEL", "info"))
    config = alembic_config()
    config.attributes["database_url"] = DatabaseSettings().database_url
    config.attributes["configure_logger"] = False  # keep our JSON logging
    command.upgrade(config, "head")


def serve(reload: bool) -> None:
    import uvicorn

    from app.core.config import get_settings

    settings = get_settings()  # fail now, with a readable message, on a bad environment
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=os.environ.get("HOST", "0.0.0.0"),
        port=settings.port,
        reload=reload,
        # Off: X-Forwarded-For is believed only from TRUSTED_PROXIES (app/core/proxies.py).
        proxy_headers=False,
        access_log=False,  # one JSON line per request comes from RequestLogMiddleware
        log_config=None,  # the app configures logging (JSON)
        server_header=False,
        timeout_graceful_shutdown=5,  # open SSE streams are cut after this
    )


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["migrate"]:
            migrate()
        elif not argv or argv == ["--reload"]:
            serve(reload="--reload" in argv)
        else:
            print("usage: python -m app [--reload] | python -m app migrate", file=sys.stderr)
            return 2
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"invalid configuration: {problems}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
