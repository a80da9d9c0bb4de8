"""The feedback route's parser refuses bad input with the right status; the limiter is per client."""

from __future__ import annotations

import pytest

from edgeproxy.personalize.events import Click
from edgeproxy.personalize.feedback import (
    MAX_FEEDBACK_BYTES,
    FeedbackError,
    RateDecision,
    TokenBucketLimiter,
    parse_feedback,
)


def test_a_click_is_parsed_with_the_server_time() -> None:
    click = parse_feedback(b'{"user": "u0001", "item": 17, "impression": "ab12"}', now=100.0)
    assert click == Click(at=100.0, user_id="u0001", item_id="17", impression_id="ab12")
    assert parse_feedback(b'{"user": "u2", "item": "x-1"}', now=1.0).impression_id is None


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"x" * (MAX_FEEDBACK_BYTES + 1), 413, "limit"),
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[1]", 400, "JSON object"),
        (b'{"item": 1}', 400, "'user'"),
        (b'{"user": "u1"}', 400, "'item'"),
        (b'{"user": "u 1", "item": 1}', 400, "'user'"),
        (b'{"user": "u1", "item": true}', 400, "'item'"),
        (b'{"user": "u1", "item": 1.5}', 400, "'item'"),
        (b'{"user": "' + b"a" * 65 + b'", "item": 1}', 400, "1-64"),
        (b'{"user": "u1", "item": 1, "price": 3}', 400, "unknown"),
        (b'{"user": "u1", "item": 1, "event": "purchase"}', 400, "click"),
    ],
)
def test_bad_feedback_is_refused(body: bytes, status: int, words: str) -> None:
    with pytest.raises(FeedbackError) as err:
        parse_feedback(body, now=0.0)
    assert err.value.status == status
    assert words in err.value.reason


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    limiter = TokenBucketLimiter(rate=2.0, burst=3.0)
    assert [limiter.check("a", 0.0) for _ in range(4)] == [RateDecision.ALLOWED] * 3 + [RateDecision.LIMITED]
    assert limiter.check("b", 0.0) is RateDecision.ALLOWED  # clients do not share a bucket
    assert limiter.check("a", 0.5) is RateDecision.ALLOWED  # one token back after 1/rate
    assert limiter.check("a", 0.5) is RateDecision.LIMITED
    assert [limiter.check("a", 100.0) for _ in range(4)].count(RateDecision.ALLOWED) == 3  # never above burst


def test_token_bucket_forgets_the_least_recent_clients() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=1.0, max_clients=2)
    for client in ("a", "b", "c"):
        limiter.check(client, 0.0)
    assert limiter.check("a", 0.0) is RateDecision.ALLOWED  # "a" was evicted: a fresh bucket
    assert limiter.check("c", 0.0) is RateDecision.LIMITED
