"""Deadline reminders (催报提醒), their policy per cycle, the outbox (待发消息), extension requests
(申请延期) and how each user wants to be told (channels)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..limits import fitted
from ..timeutil import utcnow

REMINDER_KINDS = {
    "before_due": "截止前提醒",
    "due_today": "截止当日提醒",
    "overdue": "逾期催报",
    "escalation": "逾期升级提醒",
    "backlog": "待审积压提醒",
    "digest": "每日进度汇总",
    "manual": "人工催报",
}

DEFAULT_POLICY = {
    "enabled": True,
    "before_due_days": "5,3,1",
    "on_due_day": True,
    "overdue_every": 2,
    "overdue_max": 5,
    "escalate_after": 3,
    "backlog_days": 2,
    "backlog_max": 3,
    "daily_digest": True,
    "send_time": "09:00",
}


class ReminderPolicy(db.Model):
    """When the scheduler chases a cycle's units and reviewers. Counts are in working days."""

    __tablename__ = "reminder_policy"
    __table_args__ = (
        CheckConstraint("overdue_every >= 1", name="overdue_every"),
        CheckConstraint("overdue_max >= 0", name="overdue_max"),
        CheckConstraint("escalate_after >= 0", name="escalate_after"),
        CheckConstraint("backlog_days >= 0", name="backlog_days"),
        CheckConstraint("backlog_max >= 0", name="backlog_max"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("report_cycle.id", ondelete="CASCADE"), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Working days before the due date on which to remind, e.g. "5,3,1".
    before_due_days: Mapped[str] = mapped_column(String(60), default="5,3,1")
    on_due_day: Mapped[bool] = mapped_column(default=True)
    # Overdue: the first working day after the due date, then every N working days, at most ``max`` times.
    overdue_every: Mapped[int] = mapped_column(default=2)
    overdue_max: Mapped[int] = mapped_column(default=5)
    # After M working days overdue the unit head and the office admins are told (0: never).
    escalate_after: Mapped[int] = mapped_column(default=3)
    # Reviewers are reminded of submissions waiting more than K working days (0: never).
    backlog_days: Mapped[int] = mapped_column(default=2)
    backlog_max: Mapped[int] = mapped_column(default=3)
    daily_digest: Mapped[bool] = mapped_column(default=True)
    # Local time of day (config TIMEZONE) from which the day's reminders go out, "HH:MM".
    send_time: Mapped[str] = mapped_column(String(5), default="09:00")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    cycle = relationship("ReportCycle")

    @property
    def before_days(self) -> list[int]:
        return sorted({int(x) for x in (self.before_due_days or "").replace("，", ",").split(",")
                       if x.strip()}, reverse=True)


class Reminder(db.Model):
    """One reminder, sent once: ``key`` (contribution, kind, occurrence) is unique.

    Cycle-level reminders (the daily digest) have no contribution; their key names the cycle.
    """

    __tablename__ = "reminder"
    __table_args__ = (
        UniqueConstraint("key"),
        CheckConstraint(f"kind IN {tuple(REMINDER_KINDS)}", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    cycle_id: Mapped[int] = mapped_column(ForeignKey("report_cycle.id", ondelete="CASCADE"), index=True)
    contribution_id: Mapped[int | None] = mapped_column(
        ForeignKey("contribution.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    # Which instance of the kind, e.g. "2025-01-10/3" (3 working days before that due date).
    occurrence: Mapped[str] = mapped_column(String(80))
    due: Mapped[date | None]
    # The local day the reminder is for (the sweep's day).
    day: Mapped[date]
    message: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    recipients: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    contribution = relationship("Contribution")
    cycle = relationship("ReportCycle")
    actor = relationship("User")

    @property
    def kind_label(self) -> str:
        # The unit-head variant of the backlog reminder (see reminders.policy.UNIT_REVIEW_PREFIX).
        if self.kind == "backlog" and (self.occurrence or "").startswith("unit/"):
            return "待单位审核提醒"
        return REMINDER_KINDS[self.kind]

    @staticmethod
    def make_key(kind: str, occurrence: str, contribution_id: int | None = None,
                 cycle_id: int | None = None) -> str:
        subject = f"c{contribution_id}" if contribution_id is not None else f"cycle{cycle_id}"
        return f"{subject}:{kind}:{occurrence}"


OUTBOX_STATUSES = {
    "pending": "待发送",
    "sending": "发送中",
    "sent": "已发送",
    "dead": "发送失败",
    "cancelled": "已取消",
}
CHANNELS = {"email": "电子邮件", "webhook": "群机器人"}


class OutboxMessage(db.Model):
    """A message written in the same transaction as its cause and delivered afterwards."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        CheckConstraint(f"status IN {tuple(OUTBOX_STATUSES)}", name="status"),
        CheckConstraint(f"channel IN {tuple(CHANNELS)}", name="channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), index=True)
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_target.id", ondelete="SET NULL"))
    # The e-mail address, or the webhook's name (its URL may hold a key and is read at delivery).
    address: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    # Webhook extras, e.g. mobiles to @mention.
    payload: Mapped[dict | None] = mapped_column(JSON)
    # What caused the message: "reminder", "transition:return", "cycle:open", "extension:granted" …
    cause: Mapped[str] = mapped_column(String(60))
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminder.id", ondelete="SET NULL"),
                                                    index=True)
    # A reminder about this contribution is cancelled if the material was submitted before delivery.
    contribution_id: Mapped[int | None] = mapped_column(
        ForeignKey("contribution.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    claimed_at: Mapped[datetime | None]
    # After this moment the message is stale (e.g. "due in 3 days" after the date) and is cancelled.
    expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None]

    user = relationship("User")
    webhook = relationship("WebhookTarget")
    reminder = relationship("Reminder")

    # Subjects are composed from section titles and unit names: fitted, so a long title can never
    # stop a reminder sweep or a decision (the full text stays in the body).
    _fit = fitted("subject", "cause")

    @property
    def status_label(self) -> str:
        return OUTBOX_STATUSES[self.status]

    @property
    def channel_label(self) -> str:
        return CHANNELS[self.channel]


WEBHOOK_KINDS = {"wecom": "企业微信群机器人", "dingtalk": "钉钉群机器人"}


class WebhookTarget(db.Model):
    """A group robot of one unit or of one cycle (the whole cycle's group)."""

    __tablename__ = "webhook_target"
    __table_args__ = (
        CheckConstraint("(unit_id IS NULL) <> (cycle_id IS NULL)", name="one_owner"),
        CheckConstraint(f"kind IN {tuple(WEBHOOK_KINDS)}", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), index=True)
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("report_cycle.id", ondelete="CASCADE"),
                                                 index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10), default="wecom")
    url: Mapped[str] = mapped_column(String(500))
    # When set, requests carry DingTalk-style "timestamp" and "sign" (HMAC-SHA256) query parameters.
    secret: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    unit = relationship("Unit")
    cycle = relationship("ReportCycle")

    @property
    def kind_label(self) -> str:
        return WEBHOOK_KINDS[self.kind]


class UserChannelPreference(db.Model):
    """Which channels a user wants; no row means the defaults (e-mail and in-app both on)."""

    __tablename__ = "user_channel_preference"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), unique=True)
    email: Mapped[bool] = mapped_column(default=True)
    inapp: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    user = relationship("User")


EXTENSION_STATUSES = {"pending": "待审批", "granted": "已同意", "refused": "未同意", "withdrawn": "已撤回"}


class ExtensionRequest(db.Model):
    """A liaison's request for a later due date (申请延期), and the admin's decision."""

    __tablename__ = "extension_request"
    __table_args__ = (CheckConstraint(f"status IN {tuple(EXTENSION_STATUSES)}", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id", ondelete="CASCADE"), index=True)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    reason: Mapped[str] = mapped_column(Text)
    current_due: Mapped[date | None]
    requested_due: Mapped[date]
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    granted_due: Mapped[date | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    decision_comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    assignment = relationship("Assignment")
    requested_by = relationship("User", foreign_keys=[requested_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])

    @property
    def status_label(self) -> str:
        return EXTENSION_STATUSES[self.status]
