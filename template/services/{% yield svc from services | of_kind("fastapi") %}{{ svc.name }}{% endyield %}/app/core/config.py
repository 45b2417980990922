"""Settings from the environment (see README.md for the full list).

`DatabaseSettings` is all that migrations need; `Settings` adds the rest and is
what the application uses. Both are plain pydantic-settings models, so tests can
build them with keyword arguments instead of touching the environment.

Secrets may also be files named after the setting (``postgres_password``,
``jwt_secret_key``, ``redis_password``...) in ``/run/secrets``, where Compose
mounts them (``SECRETS_DIR`` names another folder). A file there wins over a
variable of the same name: an older config/.env may still carry a stale one.
"""

from __future__ import annotations

import os
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)\s*$", re.IGNORECASE)
_PERIODS = {"second": 1, "minute": 60, "hour": 3600}
_OFF = {"", "0", "off", "none", "false"}


class RateLimit:
    """A fixed-window limit: ``hits`` requests per ``seconds``."""

    __slots__ = ("hits", "seconds")

    def __init__(self, hits: int, seconds: int) -> None:
        self.hits = hits
        self.seconds = seconds

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """``"5/minute"`` -> RateLimit(5, 60); ``""``/``"off"`` -> None (no limit)."""
        if text.strip().lower() in _OFF:
            return None
        match = _RATE.match(text)
        if match is None or int(match[1]) < 1:
            raise ValueError(f"invalid rate limit {text!r}: use N/second, N/minute or N/hour")
        return cls(int(match[1]), _PERIODS[match[2].lower()])

    def __repr__(self) -> str:
        return f"RateLimit({self.hits}/{self.seconds}s)"


def secrets_dir() -> Path | None:
    """The folder of secret files, if there is one (pydantic-settings warns about a missing one)."""
    folder = Path(os.environ.get("SECRETS_DIR") or "/run/secrets")
    return folder if folder.is_dir() else None


class DatabaseSettings(BaseSettings):
    """Where PostgreSQL is: ``DATABASE_URL``, or built from the ``POSTGRES_*`` variables."""

    model_config = SettingsConfigDict(
        extra="ignore", case_sensitive=False, secrets_dir=secrets_dir()
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Secret files before the environment (see the module docstring).
        return init_settings, file_secret_settings, env_settings, dotenv_settings

    database_url_env: str | None = Field(default=None, validation_alias="DATABASE_URL")
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_host: str = "postgres"
    postgres_port: int = 5432
    database_name: str = "app"

    @cached_property
    def database_url(self) -> str:
        """The SQLAlchemy URL, always with the asyncpg driver (password included)."""
        if self.database_url_env:
            return normalize_database_url(self.database_url_env)
        url = URL.create(
            "postgresql+asyncpg",
            username=self.postgres_user,
            password=self.postgres_password or None,
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.database_name,
        )
        return url.render_as_string(hide_password=False)


def normalize_database_url(url: str) -> str:
    """``postgres://``, ``postgresql://`` or ``postgresql+<driver>://`` -> asyncpg."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def with_redis_password(url: str, password: str) -> str:
    """``redis://host:6379/0`` + password -> ``redis://:<password>@host:6379/0``.

    A URL that already carries credentials, or an empty one (Redis off), stays as it is.
    """
    url = url.strip()
    if not url or not password or "@" in urlsplit(url).netloc:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://:{quote(password, safe='')}@{rest}"


class Settings(DatabaseSettings):
    """Everything the service reads from the environment."""

    service_name: str = "api"
    port: int = 8000
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    # Redis and RabbitMQ: empty means "off".
    redis_url: str = ""
    # Goes into redis_url when that names no password: redis://:<password>@host:port/0
    redis_password: str = ""
    rabbitmq_url_env: str = Field(default="", validation_alias="RABBITMQ_URL")
    rabbitmq_host: str = ""
    rabbitmq_port: int = 5672
    rabbitmq_default_user: str = "guest"
    rabbitmq_default_pass: str = "guest"
    export_queue: str = ""  # default "<service_name>.exports"
    events_exchange: str = ""  # default "<service_name>.events"
    exports_dir: Path = Path("exports")

    # Security
    jwt_secret_key: str = ""
    access_token_minutes: int = Field(default=30, ge=1)
    refresh_token_days: int = Field(default=7, ge=1)
    # A login (session) ends this long after it began, however often its token rotated.
    session_max_days: int = Field(default=30, ge=1)
    bcrypt_rounds: int = Field(default=12, ge=4, le=31)
    cookie_secure: bool = False
    first_admin_email: str = ""
    first_admin_password: str = ""
    cors_origins: str = ""
    # Proxies whose X-Forwarded-For is believed: hostnames (resolved by the API), IPs, CIDRs.
    trusted_proxies: str = ""

    # Cache and limits
    cache_ttl_seconds: int = Field(default=60, ge=0)
    # Export jobs one user may have queued or running at once (429 beyond).
    export_max_active_per_user: int = Field(default=3, ge=1)
    login_rate_limit: str = "5/minute"
    general_rate_limit: str = "600/minute"

    # Tunables with sane defaults
    # Connections kept open per process (overflow ones are closed again after use,
    # so keep the pool itself large enough for the usual concurrency).
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # How often an open event stream checks that its user's rights are unchanged.
    sse_auth_check_seconds: float = Field(default=5.0, gt=0)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    # Bound on one Redis operation. Generous on purpose: under load, time spent
    # waiting for the event loop counts too, and a timeout switches to PostgreSQL.
    redis_timeout_seconds: float = Field(default=2.0, gt=0)
    redis_max_connections: int = Field(default=1024, ge=1)
    publish_timeout_seconds: float = Field(default=5.0, gt=0)

    # Login flood and probe hardening (issue 12)
    # Per client IP whatever the e-mail, on top of LOGIN_RATE_LIMIT (IP + e-mail).
    login_ip_rate_limit: str = "20/minute"
    # bcrypt checks running at once per process; a login beyond them gets 503 at once.
    max_concurrent_password_checks: int = Field(default=2, ge=1)
    ready_rate_limit: str = "60/minute"  # per client IP on /ready (exempt from the general one)
    api_docs_enabled: bool = True  # /docs, /redoc and /openapi.json; false: 404

    @field_validator("service_name")
    @classmethod
    def _service_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("SERVICE_NAME must not be empty")
        return value

    @field_validator("jwt_secret_key")
    @classmethod
    def _jwt_secret(cls, value: str) -> str:
        if len(value) < 32:
            raise ValueError(
                "JWT_SECRET_KEY must be set to a random secret of at least 32 characters "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return value

    @field_validator("login_rate_limit", "general_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        RateLimit.parse(value)
        return value

    @field_validator("login_ip_rate_limit", "ready_rate_limit")
    @classmethod
    def _more_rate_limits(cls, value: str) -> str:
        RateLimit.parse(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.export_queue:
            self.export_queue = f"{self.service_name}.exports"
        if not self.events_exchange:
            self.events_exchange = f"{self.service_name}.events"
        self.first_admin_email = self.first_admin_email.strip().lower()
        self.redis_url = with_redis_password(self.redis_url, self.redis_password)
        return self

    @property
    def redis_enabled(self) -> bool:
        return bool(self.redis_url.strip())

    @cached_property
    def rabbitmq_url(self) -> str | None:
        """``RABBITMQ_URL``, else built from ``RABBITMQ_HOST`` and friends; None = off."""
        if self.rabbitmq_url_env.strip():
            return self.rabbitmq_url_env.strip()
        if not self.rabbitmq_host.strip():
            return None
        user = quote(self.rabbitmq_default_user, safe="")
        password = quote(self.rabbitmq_default_pass, safe="")
        return f"amqp://{user}:{password}@{self.rabbitmq_host.strip()}:{self.rabbitmq_port}/"

    @cached_property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @cached_property
    def trusted_proxy_list(self) -> list[str]:
        return [entry.strip() for entry in self.trusted_proxies.split(",") if entry.strip()]

    @cached_property
    def login_limit(self) -> RateLimit | None:
        return RateLimit.parse(self.login_rate_limit)

    @cached_property
    def general_limit(self) -> RateLimit | None:
        return RateLimit.parse(self.general_rate_limit)

    @cached_property
    def login_ip_limit(self) -> RateLimit | None:
        return RateLimit.parse(self.login_ip_rate_limit)

    @cached_property
    def ready_limit(self) -> RateLimit | None:
        return RateLimit.parse(self.ready_rate_limit)

    @property
    def key_prefix(self) -> str:
        """Prefix of every Redis key, so several services can share one Redis."""
        return f"{self.service_name}:"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
