"""Exceptions, one class per ``data.reason`` (docs/protocol.md, "Errors")."""
from __future__ import annotations

from typing import Any, Dict, Optional, Type


class ContactdError(Exception):
    """An error from contactd or from talking to it.

    ``reason`` is stable and meant for programs (``"not_found"``, ``"rate_limited"``, …);
    ``message`` is for people and may change; ``code`` is the JSON-RPC error code, or ``None`` for
    errors the client itself found (``connection_failed``, ``timed_out``, …). A reason this client
    does not know (from a newer contactd) is raised as ``ContactdError`` itself, reason intact.
    """

    reason: str = "unknown"

    def __init__(self, message: str, *, reason: Optional[str] = None, code: Optional[int] = None,
                 data: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.code = code
        self.data: Dict[str, Any] = data or {}

    def __str__(self) -> str:
        return f"{self.message} [{self.reason}]"

    @property
    def retry_after(self) -> Optional[float]:
        """Seconds contactd says to wait before trying again (``data.retry_after``), when it says:
        on ``RateLimited``, and on ``UpstreamUnavailable`` when the API said."""
        value = self.data.get("retry_after")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @staticmethod
    def from_error_object(error: Any) -> "ContactdError":
        """The exception for a JSON-RPC ``error`` member as contactd sends it."""
        if not isinstance(error, dict):
            return BadResponse(f"contactd sent an error that is not an object: {error!r}")
        data = error.get("data")
        data = data if isinstance(data, dict) else {}
        reason = data.get("reason")
        reason = reason if isinstance(reason, str) else "unknown"
        message = error.get("message")
        message = message if isinstance(message, str) else reason
        code = error.get("code")
        code = code if isinstance(code, int) else None
        cls = _BY_REASON.get(reason, ContactdError)
        return cls(message, reason=reason, code=code, data=data)


# Errors contactd sends.

class ParseError(ContactdError):
    reason = "parse_error"


class InvalidRequest(ContactdError):
    reason = "invalid_request"


class RequestTooLarge(InvalidRequest):
    reason = "request_too_large"


class BatchTooLarge(InvalidRequest):
    reason = "batch_too_large"


class MethodNotFound(ContactdError):
    reason = "method_not_found"


class InvalidParams(ContactdError):
    reason = "invalid_params"


class InvalidPhoneNumber(InvalidParams):
    reason = "invalid_phone_number"


class InvalidContactId(InvalidParams):
    reason = "invalid_contact_id"


class RejectedByApi(InvalidParams):
    reason = "rejected_by_api"


class InternalError(ContactdError):
    reason = "internal_error"


class NotFound(ContactdError):
    """The API says there is no such contact (this answer is cached too)."""
    reason = "not_found"


class UpstreamUnavailable(ContactdError):
    """The API failed: network error, timeout, reset or 5xx. Worth retrying later."""
    reason = "upstream_unavailable"


class UpstreamUnauthorized(ContactdError):
    """The API rejected the daemon's token: an operator must act."""
    reason = "upstream_unauthorized"


class RateLimited(ContactdError):
    """The API is rate limiting; ``retry_after`` is how many seconds it asked for, when it said."""
    reason = "rate_limited"


class Overloaded(ContactdError):
    """A contactd limit: too many connections or requests in flight. Retry with backoff."""
    reason = "overloaded"


class ShuttingDown(ContactdError):
    """contactd is draining; its successor takes new connections (the clients reconnect)."""
    reason = "shutting_down"


class Forbidden(ContactdError):
    """This process's user or group may not use contactd (``--allow-uid``/``--allow-gid``)."""
    reason = "forbidden"


class UpstreamBadResponse(ContactdError):
    """The API answered with something that is not a contact."""
    reason = "upstream_bad_response"


# Errors the client finds itself (no JSON-RPC code).

class ConnectionFailed(ContactdError):
    """No contactd to connect to (no socket, nobody listening)."""
    reason = "connection_failed"


class PermissionDenied(ContactdError):
    """The socket exists but this user may not open it (not in its group)."""
    reason = "permission_denied"


class TimedOut(ContactdError):
    """No answer within the call's timeout."""
    reason = "timed_out"


class ConnectionClosed(ContactdError):
    """contactd closed the connection before answering."""
    reason = "connection_closed"


class BadResponse(ContactdError):
    """contactd sent something this client cannot read."""
    reason = "bad_response"


_BY_REASON: Dict[str, Type[ContactdError]] = {
    cls.reason: cls
    for cls in (ParseError, InvalidRequest, RequestTooLarge, BatchTooLarge, MethodNotFound, InvalidParams,
                InvalidPhoneNumber, InvalidContactId, RejectedByApi, InternalError, NotFound, UpstreamUnavailable,
                UpstreamUnauthorized, RateLimited, Overloaded, ShuttingDown, Forbidden, UpstreamBadResponse)
}

#: Every reason contactd sends, and the class raised for it.
SERVER_REASONS: Dict[str, Type[ContactdError]] = dict(_BY_REASON)
