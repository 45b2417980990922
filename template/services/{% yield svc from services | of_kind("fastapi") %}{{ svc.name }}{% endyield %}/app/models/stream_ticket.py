from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class StreamTicket(Base):
    """An event-stream ticket already redeemed (kept until it would have expired anyway)."""

    __tablename__ = "stream_tickets"

    ticket_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
