"""In-app notifications (the inbox). Delivery by other channels goes through the outbox."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..limits import fitted
from ..timeutil import utcnow

NOTIFICATION_KINDS = {
    "to_review": "待审核",
    "to_unit_review": "待单位审核",
    "returned": "已退回",
    "approved": "已通过",
    "reminder": "催报提醒",
    "cycle": "年度报告",
    "signoff": "待签发",
    "other": "通知",
}


class Notification(db.Model):
    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="other")
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    read_at: Mapped[datetime | None]

    user = relationship("User")

    # Titles are composed from section titles, unit and user names: fitted, never refused.
    _fit = fitted("title", "link")

    @property
    def kind_label(self) -> str:
        return NOTIFICATION_KINDS.get(self.kind, "通知")
