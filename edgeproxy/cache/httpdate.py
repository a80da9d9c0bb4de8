"""HTTP-date (RFC 9110 §5.6.7): parse all three historical formats, always emit IMF-fixdate."""

from __future__ import annotations

import calendar
import re
import time
from email.utils import formatdate, parsedate_tz
from functools import lru_cache

_TIME_OF_DAY = re.compile(r"\d{1,2}[:.]\d{2}[:.]\d{2}")
_RFC850_YEAR = re.compile(r"-\d{2}\s")
_MONTHS = {name: number for number, name in enumerate(calendar.month_abbr) if name}
_IMF_FIXDATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-3]\d) (" + "|".join(_MONTHS) + r") (\d{4}) ([0-2]\d):([0-5]\d):([0-6]\d) GMT"
)
"""The one format senders must generate (§5.6.7); parsed directly, the others via ``parsedate_tz``."""


def parse_http_date(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds since the epoch, or None for an absent or invalid date.

    §5.6.7: recipients MUST accept IMF-fixdate, RFC 850 and asctime forms, and are encouraged
    to be robust, so case and spacing slips are tolerated (``parsedate_tz``). A value holding
    more than one date (two field lines joined by a comma) is invalid: RFC 9111 §4.2.1 lets a
    cache treat duplicate Expires as stale. With ``now`` given, a two-digit RFC 850 year is read
    as the most recent matching year not more than 50 years ahead, as §5.6.7 requires.
    """
    if not value:
        return None
    fixdate = _parse_fixdate(value)
    if fixdate is not None:
        return fixdate
    if len(_TIME_OF_DAY.findall(value)) > 1:
        return None
    parsed = parsedate_tz(value.strip())
    if parsed is None:
        return None
    year = parsed[0]
    if now is not None and _RFC850_YEAR.search(value):
        this_year = time.gmtime(now).tm_year
        year = this_year - this_year % 100 + year % 100
        if year > this_year + 50:
            year -= 100
    try:
        return float(calendar.timegm((year, *parsed[1:6], 0, 1, 0)) - (parsed[9] or 0))
    except (OverflowError, ValueError):
        return None


@lru_cache(maxsize=1024)
def _parse_fixdate(value: str) -> float | None:
    """An IMF-fixdate, or None for any other form. Memoized: a second's Date, and the
    Last-Modified and Expires values of hot objects, arrive on many responses."""
    fixdate = _IMF_FIXDATE.fullmatch(value)
    if fixdate is None:
        return None
    day, month, year, hour, minute, second = fixdate.groups()
    return float(calendar.timegm((int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))))


def format_http_date(timestamp: float) -> str:
    """IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(timestamp, usegmt=True)
