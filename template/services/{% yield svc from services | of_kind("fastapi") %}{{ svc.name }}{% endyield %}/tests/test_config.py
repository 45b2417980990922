"""Settings from the environment contract (no backing service needed)."""

import pytest
from pydantic import ValidationError

from app.core.config import RateLimit, Settings

SECRET = "s" * 32


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    # What a container running the service sets (a dev container runs these tests too).
    for name in (
        "DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "RABBITMQ_HOST", "SERVICE_NAME",
        "EXPORT_QUEUE", "EVENTS_EXCHANGE", "POSTGRES_PASSWORD", "POSTGRES_USER",
        "POSTGRES_HOST", "POSTGRES_PORT", "DATABASE_NAME", "RABBITMQ_DEFAULT_USER",
        "RABBITMQ_DEFAULT_PASS", "REDIS_PASSWORD", "TRUSTED_PROXIES", "CORS_ORIGINS",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    env.setdefault("JWT_SECRET_KEY", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_jwt_secret_is_required_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET_KEY must be set"):
        settings(monkeypatch, JWT_SECRET_KEY="too-short")
    monkeypatch.delenv("JWT_SECRET_KEY")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch)
    assert (s.service_name, s.port, s.log_level) == ("api", 8000, "info")
    assert (s.export_queue, s.events_exchange) == ("api.exports", "api.events")
    assert (s.access_token_minutes, s.refresh_token_days, s.cache_ttl_seconds) == (30, 7, 60)
    assert not s.redis_enabled and s.rabbitmq_url is None


@pytest.mark.parametrize(
    "given",
    [
        "postgres://u:p@db:5432/app",
        "postgresql://u:p@db:5432/app",
        "postgresql+asyncpg://u:p@db:5432/app",
        "postgresql+psycopg://u:p@db:5432/app",
    ],
)
def test_database_url_is_normalised_to_asyncpg(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    assert settings(monkeypatch, DATABASE_URL=given).database_url == (
        "postgresql+asyncpg://u:p@db:5432/app"
    )


def test_database_url_from_postgres_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(
        monkeypatch, POSTGRES_USER="app", POSTGRES_PASSWORD="p@ss:w/rd%", DATABASE_NAME="billing"
    )
    assert s.database_url == "postgresql+asyncpg://app:p%40ss%3Aw%2Frd%25@postgres:5432/billing"


def test_redis_and_rabbitmq_empty_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, REDIS_URL="", RABBITMQ_HOST="")
    assert not s.redis_enabled and s.rabbitmq_url is None


def test_rabbitmq_url_from_host(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(
        monkeypatch,
        RABBITMQ_HOST="rabbitmq",
        RABBITMQ_DEFAULT_USER="app",
        RABBITMQ_DEFAULT_PASS="a/b@c",
        SERVICE_NAME="billing",
    )
    assert s.rabbitmq_url == "amqp://app:a%2Fb%40c@rabbitmq:5672/"
    assert (s.export_queue, s.events_exchange) == ("billing.exports", "billing.events")
    explicit = settings(monkeypatch, RABBITMQ_URL="amqp://x:y@h:1/", RABBITMQ_HOST="ignored")
    assert explicit.rabbitmq_url == "amqp://x:y@h:1/"


def test_cors_origins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, CORS_ORIGINS="http://a.test, http://b.test,")
    assert s.cors_origin_list == ["http://a.test", "http://b.test"]


@pytest.mark.parametrize(
    ("text", "hits", "seconds"),
    [("5/minute", 5, 60), ("600/MINUTE", 600, 60), ("2/second", 2, 1), ("10 / hour", 10, 3600)],
)
def test_rate_limits_parse(text: str, hits: int, seconds: int) -> None:
    limit = RateLimit.parse(text)
    assert limit is not None and (limit.hits, limit.seconds) == (hits, seconds)


def test_rate_limit_off_and_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RateLimit.parse("off") is None
    with pytest.raises(ValidationError, match="invalid rate limit"):
        settings(monkeypatch, GENERAL_RATE_LIMIT="5 per minute")


def test_secret_files_win_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Compose mounts each secret as /run/secrets/<setting>; a stale variable must not win."""
    (tmp_path / "postgres_password").write_text("from-the-file\n")
    (tmp_path / "jwt_secret_key").write_text("f" * 40)
    settings(monkeypatch, POSTGRES_PASSWORD="stale", POSTGRES_USER="api_user", POSTGRES_HOST="db")
    read = Settings(_secrets_dir=tmp_path)
    assert read.postgres_password == "from-the-file"
    assert read.jwt_secret_key == "f" * 40
    assert read.database_url == "postgresql+asyncpg://api_user:from-the-file@db:5432/app"


def test_redis_password_goes_into_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with_password = settings(monkeypatch, REDIS_URL="redis://redis:6379/0", REDIS_PASSWORD="p@s/w")
    assert with_password.redis_url == "redis://:p%40s%2Fw@redis:6379/0"
    own = settings(monkeypatch, REDIS_URL="redis://:given@redis:6379/0", REDIS_PASSWORD="other")
    assert own.redis_url == "redis://:given@redis:6379/0"  # a URL's own credentials stay
    off = settings(monkeypatch, REDIS_URL="", REDIS_PASSWORD="p")
    assert off.redis_url == "" and not off.redis_enabled
