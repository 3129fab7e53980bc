"""Notification channels: e-mail (SMTP), group-robot webhooks, the in-app inbox, and the outbox.

Nothing here talks to the network inside a transaction: causes add outbox rows (``outbox.py``) and
``fazhi_flow.reminders.jobs.deliver`` sends them afterwards through ``email.py`` / ``webhook.py``.
"""


class DeliveryFailure(Exception):
    """Sending failed; ``temporary`` failures are retried with backoff, the others are dead."""

    temporary = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TemporaryFailure(DeliveryFailure):
    temporary = True


class PermanentFailure(DeliveryFailure):
    temporary = False


class Unreachable(TemporaryFailure):
    """The server could not be reached at all (refused, timeout, dropped connection)."""
