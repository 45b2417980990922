from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from app.core.security import BCRYPT_MAX_BYTES
from app.schemas.common import no_nul

Role = Literal["admin", "user"]


def _fits_bcrypt(value: str) -> str:
    if len(value.encode()) > BCRYPT_MAX_BYTES:
        raise ValueError(f"password must be at most {BCRYPT_MAX_BYTES} bytes in UTF-8")
    return value


Email = Annotated[EmailStr, AfterValidator(str.lower)]
Password = Annotated[
    str, StringConstraints(min_length=8), AfterValidator(_fits_bcrypt), AfterValidator(no_nul)
]
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(no_nul)
]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str | None
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password
    full_name: FullName | None = None
    role: Role = "user"
    is_active: bool = True


class UserUpdate(BaseModel):
    """Only the fields given are changed.

    Changing your own password or e-mail needs ``current_password`` too: a stolen
    access token alone must not be enough to take an account over for good.
    """

    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    email: Email | None = None
    password: Password | None = None
    full_name: FullName | None = None
    role: Role | None = None
    is_active: bool | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    total: int = Field(ge=0)
    offset: int = Field(ge=0)
    limit: int = Field(ge=1, le=100)
