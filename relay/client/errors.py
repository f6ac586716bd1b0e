"""The client's exceptions."""


class ClientError(Exception):
    """Base class of the errors the client raises."""


class CredentialsRefused(ClientError):
    """The hub refused the space name or its app token (close code 4401); retrying cannot help."""

    def __init__(self, space: str, message: str = "") -> None:
        self.space = space
        detail = message.strip() or "Unknown or inactive space, or wrong token."
        if detail[-1] not in ".!?":
            detail += "."
        super().__init__(
            f'The hub refused space "{space}": {detail} '
            "Check the space name and its app token (staff create and rotate tokens in the hub's admin)."
        )


class RequestCancelled(ClientError):
    """The hub no longer wants this request (cancelled, timed out, connection lost or app stopping).

    A request's helpers raise it once that happened, so a plain-`def` handler that
    reports progress stops by itself; the client then sends nothing more about the request.
    """

    def __init__(self, request_id: str, reason: str) -> None:
        self.request_id = request_id
        self.reason = reason
        super().__init__(f"Request {request_id} ended on the hub's side ({reason}).")


class ResultTooLarge(ClientError):
    """The result does not fit in one frame of the hub (1 MiB), so it is answered as an error instead."""
