"""HTTP-date (RFC 9110 §5.6.7): parse all three historical formats, always emit IMF-fixdate."""

from __future__ import annotations

import calendar
from email.utils import formatdate, parsedate


def parse_http_date(value: str | None) -> float | None:
    """Seconds since the epoch, or None for an absent or invalid date.

    §5.6.7: recipients MUST accept IMF-fixdate, RFC 850 and asctime forms; ``parsedate`` handles
    all three. Two-digit years are interpreted by the RFC 850 rule (within 50 years).
    """
    if not value:
        return None
    parsed = parsedate(value.strip())
    if parsed is None:
        return None
    try:
        return float(calendar.timegm(parsed))
    except (OverflowError, ValueError):
        return None


def format_http_date(timestamp: float) -> str:
    """IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(timestamp, usegmt=True)
