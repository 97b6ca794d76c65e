"""Errors the rules raise; the HTTP edge maps each family to one status code, once."""


class DriveError(Exception):
    """Base of every error a rule may raise on purpose."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Invalid(DriveError):
    status = 400
    code = "invalid"


class Unauthorized(DriveError):
    status = 401
    code = "unauthorized"


class Forbidden(DriveError):
    status = 403
    code = "forbidden"


class NotFound(DriveError):
    status = 404
    code = "not_found"


class Conflict(DriveError):
    status = 409
    code = "conflict"


class TooLarge(DriveError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(DriveError):
    status = 415
    code = "unsupported_media_type"


class PermanentFailure(Exception):
    """A message that can never succeed (bad payload): dead-letter it at once, do not retry."""
