"""What a lookup returns: the contact, typed, and what the cache says about it."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional

#: ``cache.status`` values (a newer contactd may add others; they are passed through as strings).
CACHE_STATUSES = ("hit", "miss", "stale")
#: ``cache.stale_reason`` values.
STALE_REASONS = ("refreshing", "upstream_unavailable", "rate_limited", "circuit_open", "upstream_slow")


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _time(value: Any) -> Optional[datetime]:
    """An ISO 8601 timestamp; ``None`` if absent or unreadable (the raw text stays in ``raw``)."""
    if not isinstance(value, str):
        return None
    try:
        # Python before 3.11 does not read a trailing "Z".
        return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None


@dataclass(frozen=True)
class ContactStats:
    total_calls: Optional[int] = None
    total_messages: Optional[int] = None
    last_contact: Optional[datetime] = None

    @classmethod
    def from_json(cls, value: Any) -> Optional["ContactStats"]:
        if not isinstance(value, dict):
            return None
        calls, messages = value.get("total_calls"), value.get("total_messages")
        return cls(
            total_calls=calls if isinstance(calls, int) and not isinstance(calls, bool) else None,
            total_messages=messages if isinstance(messages, int) and not isinstance(messages, bool) else None,
            last_contact=_time(value.get("last_contact")),
        )


@dataclass(frozen=True)
class Contact:
    """A contact as the API sent it. The documented members are typed (``None`` when absent or of
    another type); ``raw`` holds every member, those the API adds later included."""

    id: str
    phone_number: Optional[str] = None
    name: Optional[str] = None
    email: Optional[str] = None
    company: Optional[str] = None
    notes: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    metadata: Dict[str, Any] = field(default_factory=dict)
    stats: Optional[ContactStats] = None
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Dict[str, Any]) -> "Contact":
        tags = value.get("tags")
        metadata = value.get("metadata")
        return cls(
            id=str(value.get("id", "")),
            phone_number=_text(value.get("phone_number")),
            name=_text(value.get("name")),
            email=_text(value.get("email")),
            company=_text(value.get("company")),
            notes=_text(value.get("notes")),
            tags=[tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else [],
            metadata=dict(metadata) if isinstance(metadata, dict) else {},
            stats=ContactStats.from_json(value.get("stats")),
            created_at=_time(value.get("created_at")),
            updated_at=_time(value.get("updated_at")),
            raw=dict(value),
        )


@dataclass(frozen=True)
class CacheInfo:
    """Where the answer came from: ``status`` is ``hit``, ``miss`` or ``stale``; ``age`` whole
    seconds since the API sent it; ``stale_reason`` says why a ``stale`` answer was given."""

    status: str
    age: float
    stale_reason: Optional[str] = None

    @classmethod
    def from_json(cls, value: Any) -> "CacheInfo":
        value = value if isinstance(value, dict) else {}
        age = value.get("age")
        return cls(
            status=str(value.get("status", "")),
            age=float(age) if isinstance(age, (int, float)) else 0.0,
            stale_reason=_text(value.get("stale_reason")),
        )


@dataclass(frozen=True)
class LookupResult:
    """The answer to ``get``: the contact and what the cache says about it."""

    contact: Contact
    cache: CacheInfo
