from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    detail: str = Field(examples=["Not found"])


class Message(BaseModel):
    detail: str


class Liveness(BaseModel):
    status: str = Field(examples=["ok"])
    service: str


class Readiness(BaseModel):
    status: str = Field(description='"ready" or "unavailable"', examples=["ready"])
    checks: dict[str, str] = Field(
        description='Per backing service: "ok", "down" (the reason is logged) or "off"',
        examples=[{"postgres": "ok", "redis": "ok", "rabbitmq": "ok"}],
    )
    failed: list[str] = Field(default_factory=list, examples=[[]])


def no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL characters: refuse them with a 422, not a 500."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def error(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for an error answered as {"detail": ...}."""
    return {"model": ErrorResponse, "description": description}


UNAUTHORIZED = {401: error("Missing, invalid or expired access token")}
FORBIDDEN = {403: error("Not allowed for this user's role")}
NOT_FOUND = {404: error("No such resource (or not yours)")}
RATE_LIMITED = {429: error("Too many requests; see the Retry-After header")}
