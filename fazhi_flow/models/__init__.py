"""All models, imported here so that metadata and migrations see every table."""
from .access import TOKEN_SCOPES, ApiToken, Delegation  # noqa: F401
from .audit import AuditEvent, TransitionLog
from .contribution import Attachment, Contribution, ContributionApproval, Revision  # noqa: F401
from .cycle import Assignment, ReportCycle, Section, section_reviewer
from .figures_version import FiguresVersion  # noqa: F401
from .indicator import Indicator, Rule
from .notification import Notification
from .ops import AttachmentBlob, ChannelHealth, JobStatus  # noqa: F401
from .org import ROLE_LABELS, ROLES, Region, Unit, User, UserRole
from .publication import Publication, ReportDraftVersion, SectionDraft  # noqa: F401
from .reminder import ExtensionRequest, OutboxMessage, Reminder, ReminderPolicy, UserChannelPreference, WebhookTarget  # noqa: F401
from .security import LoginThrottle

__all__ = [
    "Assignment", "Attachment", "AuditEvent", "Contribution", "Indicator", "LoginThrottle", "Notification", "ROLES", "ROLE_LABELS",
    "Region", "ReportCycle", "Revision", "Rule", "Section", "TransitionLog", "Unit", "User", "UserRole",
    "section_reviewer",
]
