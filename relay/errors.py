"""Errors that carry a protocol code; one place each turns them into a frame or a response."""

from django.utils.translation import gettext_lazy as _


class RelayError(Exception):
    code = "error"
    http_status = 400
    close_code: int | None = None
    default_message = ""

    def __init__(self, message: str | None = None, **extra: object) -> None:
        self.message = str(message if message is not None else self.default_message)
        self.extra = extra
        super().__init__(self.message)

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **self.extra}


class BadMessage(RelayError):
    code = "bad_message"
    close_code = 4400
    default_message = "The frame is not valid."


class UnknownRequest(RelayError):
    code = "unknown_request"
    default_message = "That request id is not in flight on this connection."


class InvalidCredentials(RelayError):
    code = "invalid_credentials"
    close_code = 4401
    default_message = "Unknown or inactive space, or wrong token."


class DuplicateConnection(RelayError):
    code = "duplicate_connection"
    close_code = 4409
    default_message = "Another app is already registered for this space."


class RegisterTimeout(RelayError):
    code = "register_timeout"
    close_code = 4408
    default_message = "No register frame within 10 seconds."


class RateLimited(RelayError):
    code = "rate_limited"
    close_code = 4429
    http_status = 429
    default_message = "Too many frames: slow down."


class Invalid(RelayError):
    code = "invalid"
    http_status = 400
    default_message = _("The request is not valid.")


class Forbidden(RelayError):
    code = "forbidden"
    http_status = 403
    default_message = _("Log in to do that.")


class NotFound(RelayError):
    code = "not_found"
    http_status = 404
    default_message = _("Not found.")


class AppNotConnected(RelayError):
    code = "app_not_connected"
    http_status = 409
    default_message = _("No app is connected to this space right now. Try again when it is online.")


class TooLarge(RelayError):
    code = "too_large"
    http_status = 413
    default_message = _("The upload is larger than this space allows.")


class QueueFull(RelayError):
    code = "queue_full"
    http_status = 429
    default_message = _("This space's queue is full. Try again in a little while.")


class UserQueueFull(QueueFull):
    default_message = _("You already have the most requests waiting that one person may have. Wait for one to end.")


class NotCancellable(RelayError):
    code = "not_cancellable"
    http_status = 409
    default_message = _("The request has already ended.")
