from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.schemas.common import no_nul


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A plain string, not EmailStr: a login must answer 401, not 422, for any address.
    email: Annotated[
        str,
        StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=320),
        AfterValidator(no_nul),
    ]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    include_refresh_token: bool = Field(
        default=False,
        description="Non-browser clients: also return the refresh token in the body "
        "(browsers keep it in the httpOnly cookie only, out of reach of scripts)",
    )


class RefreshRequest(BaseModel):
    """The refresh token, unless the httpOnly cookie carries it."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str | None = Field(
        default=None,
        description="Opaque; always set as an httpOnly cookie scoped to /api/v1/auth, and "
        "in the body only for clients that ask (include_refresh_token, or a refresh "
        "presented in the body)",
    )
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires")
