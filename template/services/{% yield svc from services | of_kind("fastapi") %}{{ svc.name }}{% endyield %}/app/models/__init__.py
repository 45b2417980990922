"""ORM models; importing this package registers every table on Base.metadata."""

from app.models.export_job import ExportJob
from app.models.refresh_token import RefreshToken
from app.models.stream_ticket import StreamTicket
from app.models.user import User

__all__ = ["ExportJob", "RefreshToken", "StreamTicket", "User"]
