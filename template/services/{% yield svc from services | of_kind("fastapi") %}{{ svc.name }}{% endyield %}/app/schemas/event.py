from __future__ import annotations

from pydantic import BaseModel, Field


class StreamTicketOut(BaseModel):
    ticket: str = Field(description="Opaque; opens one event stream: GET /api/v1/events?ticket=")
    expires_in: int = Field(description="Seconds within which it must be used (once)")
