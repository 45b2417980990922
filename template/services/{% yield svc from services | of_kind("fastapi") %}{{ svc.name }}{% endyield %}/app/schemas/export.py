from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ExportFormat = Literal["csv", "json"]
ExportStatus = Literal["queued", "running", "done", "failed"]


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: ExportFormat


class ExportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    format: ExportFormat
    status: ExportStatus
    error: str | None
    row_count: int | None
    file_name: str | None
    file_size: int | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ExportPage(BaseModel):
    items: list[ExportOut]
    total: int = Field(ge=0)
    offset: int = Field(ge=0)
    limit: int = Field(ge=1, le=100)


class ExportUnavailable(BaseModel):
    """503: the job was created but could not be queued; it is marked failed."""

    detail: str
    job: ExportOut
