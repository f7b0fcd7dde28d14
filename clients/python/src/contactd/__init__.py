"""Client for contactd, the local cache of the get-contact API.

    import contactd

    with contactd.Client("/run/contactd/contactd.sock", timeout=5) as client:
        found = client.get(phone_number="+14155551234")
        print(found.contact.name, found.cache.status, found.cache.age)

``AsyncClient`` has the same methods, awaitable. Errors are subclasses of ``ContactdError`` named
after contactd's ``data.reason`` (``NotFound``, ``RateLimited``, ``UpstreamUnavailable``, …).
"""
from ._async import AsyncClient
from ._errors import (SERVER_REASONS, BadResponse, BatchTooLarge, ConnectionClosed, ConnectionFailed, ContactdError,
                      Forbidden, InternalError, InvalidContactId, InvalidParams, InvalidPhoneNumber, InvalidRequest,
                      MethodNotFound, NotFound, Overloaded, ParseError, PermissionDenied, RateLimited, RejectedByApi,
                      RequestTooLarge, ShuttingDown, TimedOut, UpstreamBadResponse, UpstreamUnauthorized,
                      UpstreamUnavailable)
from ._sync import Client
from ._types import CACHE_STATUSES, STALE_REASONS, CacheInfo, Contact, ContactStats, LookupResult
from ._wire import DEFAULT_SOCKET

__version__ = "0.3.0"

__all__ = [
    "AsyncClient", "Client", "Contact", "ContactStats", "CacheInfo", "LookupResult", "DEFAULT_SOCKET",
    "CACHE_STATUSES", "STALE_REASONS", "SERVER_REASONS", "ContactdError", "ParseError", "InvalidRequest",
    "RequestTooLarge", "BatchTooLarge", "MethodNotFound", "InvalidParams", "InvalidPhoneNumber", "InvalidContactId",
    "RejectedByApi", "InternalError", "NotFound", "UpstreamUnavailable", "UpstreamUnauthorized", "RateLimited",
    "Overloaded", "ShuttingDown", "Forbidden", "UpstreamBadResponse", "ConnectionFailed", "PermissionDenied",
    "TimedOut", "ConnectionClosed", "BadResponse",
]
