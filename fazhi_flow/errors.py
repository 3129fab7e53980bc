"""Domain errors: raised by services and the workflow, shown to the user in Chinese."""


class DomainError(Exception):
    """An operation was refused; ``message`` is shown to the user as it is."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class PermissionDenied(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    """Somebody else changed the object first (a lost race or a stale form)."""

    status = 409
