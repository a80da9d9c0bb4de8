"""Circuit breaker transitions, driven entirely by the ``now`` passed in."""

from __future__ import annotations

import pytest

from edgeproxy.storage.breaker import Admission, BreakerState, CircuitBreaker


def opened(threshold: int = 3, cooldown: float = 1.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=threshold, cooldown=cooldown)
    for _ in range(threshold):
        breaker.record_failure(now=10.0)
    return breaker


def test_closed_breaker_admits_calls_and_tolerates_fewer_failures_than_the_threshold() -> None:
    breaker = CircuitBreaker(failure_threshold=3)
    breaker.record_failure(now=0.0)
    breaker.record_failure(now=0.0)
    assert breaker.admit(now=0.0) is Admission.CALL
    assert breaker.state is BreakerState.CLOSED


def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3)
    for _ in range(2):
        breaker.record_failure(now=0.0)
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure(now=0.0)
    assert breaker.state is BreakerState.CLOSED


def test_threshold_consecutive_failures_open_it_and_calls_are_rejected_during_cooldown() -> None:
    breaker = opened()
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened == 1
    assert breaker.admit(now=10.5) is Admission.REJECT


def test_after_cooldown_exactly_one_probe_goes_out() -> None:
    breaker = opened()
    assert breaker.admit(now=11.0) is Admission.PROBE
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit(now=11.1) is Admission.REJECT


def test_successful_probe_closes_it() -> None:
    breaker = opened()
    breaker.admit(now=11.0)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit(now=11.1) is Admission.CALL


def test_failed_probe_reopens_it_for_a_new_cooldown() -> None:
    breaker = opened()
    breaker.admit(now=11.0)
    breaker.record_failure(now=11.2)
    assert breaker.state is BreakerState.OPEN
    assert breaker.admit(now=12.0) is Admission.REJECT
    assert breaker.admit(now=12.2) is Admission.PROBE


def test_a_probe_that_never_reports_is_replaced_after_another_cooldown() -> None:
    breaker = opened()
    assert breaker.admit(now=11.0) is Admission.PROBE
    assert breaker.admit(now=11.9) is Admission.REJECT
    assert breaker.admit(now=12.0) is Admission.PROBE


def test_stragglers_failing_while_open_do_not_extend_or_recount_the_opening() -> None:
    breaker = opened()
    breaker.record_failure(now=10.9)
    assert breaker.opened == 1
    assert breaker.admit(now=11.0) is Admission.PROBE


def test_nonsense_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="cooldown"):
        CircuitBreaker(cooldown=0)
