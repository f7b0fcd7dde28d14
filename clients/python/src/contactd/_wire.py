"""The wire: one JSON-RPC 2.0 message per line, replies matched by id (they may come back out of
order: a hit overtakes a miss sent before it)."""
from __future__ import annotations

import errno
import json
import time
from typing import Any, Dict, Iterator, Optional, Tuple

from ._errors import (BadResponse, ConnectionFailed, ContactdError, InvalidParams, PermissionDenied,
                      ShuttingDown, TimedOut)
from ._types import Contact, CacheInfo, LookupResult

try:  # OpenTelemetry is optional: without it, no trace context is passed.
    from opentelemetry import propagate as _propagate
except ImportError:  # pragma: no cover - depends on what the caller installed
    _propagate = None  # type: ignore[assignment]

DEFAULT_SOCKET = "/run/contactd/contactd.sock"
#: Methods safe to send again on a new connection after the old one was lost (they change
#: nothing, or change it to the same end).
IDEMPOTENT = frozenset({"contact.get", "contact.invalidate", "cache.stats", "daemon.status", "daemon.ping",
                        "rpc.discover", "daemon.config"})
#: Requests one pipelined call keeps unanswered at most: ``get_many`` sends this many, then one
#: more for each reply. Sending everything first deadlocked past about 4,000 keys: both sides'
#: socket buffers fill, contactd stops reading a client that does not read, and the client is
#: still writing.
PIPELINE_WINDOW = 256
#: Backoff between reconnection attempts, in seconds: doubling from the first to the last.
RECONNECT_FIRST, RECONNECT_LAST = 0.02, 0.5


def encode(request_id: int, method: str, params: Optional[Dict[str, Any]]) -> bytes:
    message: Dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Tuple[Any, Dict[str, Any]]:
    """A reply line as (id, reply object)."""
    try:
        reply = json.loads(line)
    except ValueError as error:
        raise BadResponse(f"contactd sent a line that is not JSON: {error}") from None
    except RecursionError:
        # json.loads recurses per level of nesting: a line nested deeply enough exhausts the
        # stack. contactd never sends one; whatever did is not contactd.
        raise BadResponse("contactd sent a line nested too deeply to read") from None
    if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
        raise BadResponse(f"contactd sent a line that is not a JSON-RPC response: {line[:200]!r}")
    return reply.get("id"), reply


def result_of(reply: Dict[str, Any]) -> Any:
    if "error" in reply:
        raise ContactdError.from_error_object(reply["error"])
    return reply["result"]


def traceparent() -> Optional[str]:
    """The caller's W3C trace context, when OpenTelemetry is installed and a span is current: a
    lookup contactd has to fetch then shows in the caller's trace (docs/protocol.md, "Tracing")."""
    if _propagate is None:
        return None
    carrier: Dict[str, str] = {}
    _propagate.inject(carrier)
    return carrier.get("traceparent")


def lookup_params(phone_number: Optional[str], contact_id: Optional[str], max_age: Optional[float]) -> Dict[str, Any]:
    if (phone_number is None) == (contact_id is None):
        raise InvalidParams("give exactly one of phone_number and contact_id", reason="invalid_params")
    params: Dict[str, Any] = {"phone_number": phone_number} if phone_number is not None else {"contact_id": contact_id}
    if max_age is not None:
        params["max_age"] = max_age
    trace = traceparent()
    if trace is not None:
        params["traceparent"] = trace
    return params


def key_params(key: str, max_age: Optional[float]) -> Dict[str, Any]:
    """A key as contactctl reads it: a leading ``+`` means a phone number, anything else an id."""
    if key.startswith("+"):
        return lookup_params(key, None, max_age)
    return lookup_params(None, key, max_age)


def lookup_result(result: Any) -> LookupResult:
    if not isinstance(result, dict) or not isinstance(result.get("contact"), dict):
        raise BadResponse(f"contactd answered contact.get without a contact: {str(result)[:200]}")
    return LookupResult(contact=Contact.from_json(result["contact"]), cache=CacheInfo.from_json(result.get("cache")))


def removed_count(result: Any) -> int:
    if isinstance(result, dict) and isinstance(result.get("removed"), int):
        return int(result["removed"])
    raise BadResponse(f"contactd answered contact.invalidate without a count: {str(result)[:200]}")


def connect_error(path: str, error: OSError) -> ContactdError:
    """A failed connect in plain words, with the obvious next step."""
    if error.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"no permission to open {path}: your user must be in the socket's group "
                                "(contactd-clients)")
    if error.errno == errno.ENOENT:
        return ConnectionFailed(f"cannot connect to {path}: no such socket (is contactd.socket running?)")
    if error.errno == errno.ECONNREFUSED:
        return ConnectionFailed(f"cannot connect to {path}: nobody is listening (is contactd running?)")
    return ConnectionFailed(f"cannot connect to {path}: {error.strerror or error}")


def retryable(error: ContactdError) -> bool:
    """Whether a call that failed this way may be sent again on a new connection."""
    return isinstance(error, ShuttingDown) or error.reason in ("connection_closed", "connection_failed")


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until ``deadline`` (``None``: no limit); ``TimedOut`` once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimedOut("no answer from contactd within the timeout")
    return left


def reconnect_delay(path: str, error: OSError, *, reconnect: bool, was_connected: bool,
                    delays: Iterator[float], deadline: Optional[float]) -> float:
    """After a failed connect: how long to wait before trying again, or the error to raise.

    Only a client that was connected before waits for the daemon to come back (a restart); a
    first connect fails at once, and so does a socket this user may not open.
    """
    failure = connect_error(path, error)
    if not (reconnect and was_connected) or isinstance(failure, PermissionDenied):
        raise failure from None
    delay = next(delays)
    if deadline is not None and time.monotonic() + delay >= deadline:
        raise TimedOut(f"contactd did not come back at {path} within the timeout") from None
    return delay


def backoff_delays() -> Iterator[float]:
    delay = RECONNECT_FIRST
    while True:
        yield delay
        delay = min(delay * 2, RECONNECT_LAST)
