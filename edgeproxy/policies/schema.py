"""The policy file vocabulary: which keys exist where, and how each scalar value is parsed.

Parsers are pure and raise ``ValueError`` whose message is the operator-facing reason; the loader
adds the file, line, policy and field around it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import TypeVar, cast
from urllib.parse import urlsplit

POLICY_KEYS = (
    "match", "priority", "origin", "ttl", "stale", "store", "key", "bypass", "personalize",
)
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "match": ("hosts", "paths", "methods"),
    "origin": ("url", "connect_timeout", "read_timeout"),
    "ttl": ("default", "min", "max", "force", "negative", "hit_for_miss"),
    "stale": ("while_revalidate", "if_error", "if_disconnected"),
    "store": ("max_object_size", "set_cookie", "cache_errors"),
    "key": (
        "query", "query_params", "sort_query", "strip_params", "headers", "cookies",
        "device_class", "lowercase_host",
    ),
    "bypass": ("methods", "cookies", "headers", "paths", "skip_rules"),
    "personalize": (
        "model", "items_path", "deadline", "max_candidates", "user_cookie", "user_header",
    ),
}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_NEVER = 100 * 365 * 86400.0
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1 << 10, "kib": 1 << 10, "mb": 1 << 20, "mib": 1 << 20, "gb": 1 << 30, "gib": 1 << 30}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""RFC 9110 §5.6.2 token: what header names, methods and cookie names are made of."""
_STATUS_CLASS = re.compile(r"([45])xx")
C = TypeVar("C", bound=str)
"""A choice of :func:`one_of`: ``str``, or a ``Literal`` of the choices where one is expected."""


def parse_duration(value: object) -> float:
    """Seconds from ``30``, ``30s``, ``5m``, ``1h``, ``2d`` or ``2ms``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a duration like 30s, 5m, 1h, 2d or 2ms, got {_shown(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        found = _DURATION.fullmatch(value.strip())
        if found is None:
            raise ValueError(f"expected a duration like 30s, 5m, 1h, 2d or 2ms, got {value!r}")
        seconds = float(found[1]) * _DURATION_UNITS[found[2]]
    if not 0 <= seconds < _NEVER:
        raise ValueError(f"a duration must be between 0s and 100 years, got {value!r}")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``512KB`` or ``8MB`` (binary multiples, as memory sizes are)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a size like 512KB or 8MB, got {_shown(value)}")
    if isinstance(value, int):
        size = value
    else:
        found = _SIZE.fullmatch(value.strip())
        if found is None:
            raise ValueError(f"expected a size like 512KB or 8MB, got {value!r}")
        size = int(float(found[1]) * _SIZE_UNITS[(found[2] or "b").lower()])
    if size <= 0:
        raise ValueError(f"a size must be positive, got {value!r}")
    return size


def format_duration(seconds: float) -> str:
    """The largest unit that divides ``seconds`` exactly (``1d``, ``5m``, ``2ms``), as ``parse_duration`` reads it."""
    for unit in ("d", "h", "m", "s", "ms"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    """The largest binary unit that divides ``size`` exactly (``8MB``), as ``parse_size`` reads it."""
    for unit in ("GB", "MB", "KB"):
        if size % _SIZE_UNITS[unit.lower()] == 0:
            return f"{size // _SIZE_UNITS[unit.lower()]}{unit}"
    return f"{size}B"


def parse_token(value: object, what: str) -> str:
    """A header name, cookie name or method: an RFC 9110 §5.6.2 token."""
    if not isinstance(value, str) or _TOKEN.fullmatch(value) is None:
        raise ValueError(f"{what} must be a token (letters, digits, -_.!#$%&'*+^`|~), got {_shown(value)}")
    return value


def parse_statuses(value: object) -> tuple[int, ...]:
    """Statuses a negative-caching TTL applies to: ``404`` or a class ``5xx`` (4xx/5xx only)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 400 <= value <= 599:
            return (value,)
    elif isinstance(value, str):
        if value.isdigit() and 400 <= int(value) <= 599:
            return (int(value),)
        found = _STATUS_CLASS.fullmatch(value.lower())
        if found is not None:
            first = int(found[1]) * 100
            return tuple(range(first, first + 100))
    raise ValueError(f"expected an error status (400-599) or a class like 5xx, got {_shown(value)}")


def parse_origin_url(value: object) -> str:
    """An origin base URL: ``http(s)://host[:port]`` with no path, query or fragment."""
    if not isinstance(value, str):
        raise ValueError(f"expected a URL like http://127.0.0.1:8081, got {_shown(value)}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc}): {value!r}") from None
    if parts.scheme not in {"http", "https"}:
        raise ValueError(f"origin URL scheme must be http or https, got {value!r}")
    if not parts.hostname:
        raise ValueError(f"origin URL has no host: {value!r}")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise ValueError(f"origin URL is scheme://host[:port] only (the request target is appended), got {value!r}")
    if port == 0:
        raise ValueError(f"origin URL port must be 1-65535, got {value!r}")
    return value.rstrip("/")


def nearest(word: str, choices: tuple[str, ...]) -> str | None:
    """The valid key an operator most likely meant, for 'did you mean' hints."""
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def _shown(value: object) -> str:
    kind = {bool: "a boolean", type(None): "nothing", list: "a list", dict: "a mapping"}.get(type(value))
    return kind if kind else repr(value)


def parse_text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected text, got {_shown(value)}")
    return value


def parse_integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {_shown(value)}")
    return value


def parse_positive_integer(value: object) -> int:
    number = parse_integer(value)
    if number <= 0:
        raise ValueError(f"expected a positive whole number, got {number}")
    return number


def parse_positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds == 0:
        raise ValueError("must be longer than 0s")
    return seconds


def parse_boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_shown(value)}")
    return value


def parse_method(value: object) -> str:
    return parse_token(value, "a method").upper()


def parse_header_name(value: object) -> str:
    return parse_token(value, "a header name").lower()


def parse_cookie_name(value: object) -> str:
    return parse_token(value, "a cookie name")


def one_of(*choices: C) -> Callable[[object], C]:
    """A parser accepting exactly one of ``choices``; typed as their ``Literal`` where the caller
    expects one (``one_of("pass", "strip")`` parses a ``SetCookieMode``)."""

    def parse(value: object) -> C:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {_shown(value)}")
        return cast(C, value)  # equal to one of choices, checked above

    return parse
