"""``POST /_edge/feedback``: parsing untrusted click reports, and a per-client rate limit.

Pure code: the shell passes the body bytes, the client identity and ``now``.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from enum import Enum

from edgeproxy.personalize.events import Click

MAX_FEEDBACK_BYTES = 2048
"""A click report is a few short ids; anything bigger is refused unread (413)."""
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class FeedbackError(ValueError):
    """A rejected feedback request, with the HTTP status the shell should answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _id_field(data: dict[str, object], name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FeedbackError(400, f"field {name!r} must be a string or integer id")
    text = str(value)
    if not _ID.fullmatch(text):
        raise FeedbackError(400, f"field {name!r} must be 1-64 characters of [A-Za-z0-9_.:-]")
    return text


def parse_feedback(body: bytes, now: float) -> Click:
    """Parse ``{"user": "u0001", "item": 17, "impression": "…"?}``; the click time is ``now``.

    Raises FeedbackError: 413 when the body exceeds MAX_FEEDBACK_BYTES, 400 for anything else
    malformed (not UTF-8 JSON, not an object, a missing or badly formed id, an unknown field).
    """
    if len(body) > MAX_FEEDBACK_BYTES:
        raise FeedbackError(413, f"feedback body is {len(body)} bytes; the limit is {MAX_FEEDBACK_BYTES}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedbackError(400, f"feedback body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise FeedbackError(400, "feedback body must be a JSON object")
    if unknown := sorted(set(data) - {"user", "item", "impression", "event"}):
        raise FeedbackError(400, f"unknown feedback fields {unknown}; expected user, item, impression")
    if data.get("event", "click") != "click":
        raise FeedbackError(400, "only 'click' events are accepted")
    user = _id_field(data, "user", required=True)
    item = _id_field(data, "item", required=True)
    assert user is not None and item is not None
    return Click(at=now, user_id=user, item_id=item, impression_id=_id_field(data, "impression", required=False))


class RateDecision(Enum):
    ALLOWED = "allowed"
    LIMITED = "limited"


class TokenBucketLimiter:
    """Per-client token buckets: ``rate`` tokens/s, at most ``burst`` saved up.

    Only the ``max_clients`` most recently seen clients are tracked; a forgotten client starts
    again with a full bucket, which bounds memory at the cost of some generosity.
    """

    def __init__(self, rate: float = 5.0, burst: float = 20.0, max_clients: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1 (got rate={rate}, burst={burst})")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, client: str, now: float) -> RateDecision:
        """Take one token from ``client``'s bucket if it has one."""
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        decision = RateDecision.ALLOWED if tokens >= 1.0 else RateDecision.LIMITED
        if decision is RateDecision.ALLOWED:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return decision
