"""The one error type the frontend's APIs answer with, in Clipper's JSON shape."""

from __future__ import annotations

import json

from clipper_deploy.errors import ClipperDeployError


class ClipperError(ClipperDeployError):
    """A request the frontend refuses: HTTP ``status`` with ``{"error": ..., "cause": ...}``.

    ``error`` is a short category (Clipper's own, such as ``"Json error"``); ``cause`` says
    what exactly was wrong and, where it helps, what to do instead.
    """

    def __init__(
        self, status: int, error: str, cause: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{error}: {cause}")
        self.status = status
        self.error = error
        self.cause = cause
        self.headers = headers or {}

    def body(self) -> bytes:
        """The JSON body of the HTTP answer."""
        return json.dumps({"error": self.error, "cause": self.cause}).encode()


JSON_ERROR = "Json error"
UNKNOWN_APP = "Unknown application"
UNKNOWN_MODEL = "Unknown model"
MANAGEMENT_ERROR = "Management operation error"
UNAUTHORIZED = "Unauthorized"
TOO_LARGE = "Request too large"
NOT_FOUND = "Not found"
METHOD_NOT_ALLOWED = "Method not allowed"
BAD_REQUEST = "Bad request"
TIMEOUT = "Request timeout"
INTERNAL = "Internal error"


def bad_json(cause: str) -> ClipperError:
    """A 400 for a body that is not the JSON the endpoint expects."""
    return ClipperError(400, JSON_ERROR, cause)


def management_error(cause: str, status: int = 400) -> ClipperError:
    """A 4xx for a management request that is well-formed but cannot be carried out."""
    return ClipperError(status, MANAGEMENT_ERROR, cause)
