"""A circuit breaker for a remote dependency (Redis): pure state, time passed in as ``now``.

Closed: calls pass; ``failure_threshold`` consecutive failures open it. Open: calls are refused
(the caller degrades at once instead of waiting on a timeout per request) until ``cooldown``
seconds have passed. Half-open: exactly one probe call is let through; its success closes the
breaker, its failure reopens it for another cool-down. A probe that never reports back (its task
was cancelled) is replaced after another cool-down so the breaker cannot stick half-open.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Admission(enum.Enum):
    """What the caller may do now."""

    CALL = "call"
    """Breaker closed: make the call."""
    PROBE = "probe"
    """Breaker half-open and this caller is the probe: make the call and report the outcome."""
    REJECT = "reject"
    """Breaker open (or a probe is in flight): do not call; degrade."""


@dataclass(slots=True)
class CircuitBreaker:
    failure_threshold: int = 5
    cooldown: float = 1.0
    state: BreakerState = field(default=BreakerState.CLOSED, init=False)
    failures: int = field(default=0, init=False)
    """Consecutive failures while closed."""
    opened: int = field(default=0, init=False)
    """How many times the breaker has opened (a counter for stats)."""
    _since: float = field(default=0.0, init=False, repr=False)
    """When the breaker opened, or when the current probe was admitted."""

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {self.failure_threshold}")
        if self.cooldown <= 0:
            raise ValueError(f"cooldown must be positive seconds, got {self.cooldown}")

    def admit(self, now: float) -> Admission:
        """Decide whether a call may go out at time ``now``."""
        if self.state is BreakerState.CLOSED:
            return Admission.CALL
        if now - self._since < self.cooldown:
            return Admission.REJECT
        self.state = BreakerState.HALF_OPEN
        self._since = now
        return Admission.PROBE

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0

    def record_failure(self, now: float) -> None:
        if self.state is BreakerState.OPEN:
            return  # a straggler admitted before the breaker opened: already accounted for
        if self.state is BreakerState.CLOSED:
            self.failures += 1
            if self.failures < self.failure_threshold:
                return
        self.state = BreakerState.OPEN
        self.opened += 1
        self.failures = 0
        self._since = now
