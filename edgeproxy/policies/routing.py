"""Which policy a request gets, whether it passes, and its cache key — computed once per request shape.

The three are a pure function of the policy set, the method, host and target, and the few
request fields that the built-in rules and the key settings read. A busy edge sees the same
shapes over and over (one URL, the same few header values), so :class:`RouteCache` remembers
them: a hot URL pays for glob matching, the bypass rules and key normalization once, not on
every request.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.builtin import DEFAULT_POLICY, bypass_reason
from edgeproxy.policies.keying import RequestKey, request_key
from edgeproxy.policies.match import PolicySet
from edgeproxy.policies.model import Policy


@dataclass(frozen=True, slots=True)
class Route:
    policy: Policy
    bypass: str | None
    """The built-in request rule that passes the request to the origin; None: look it up."""
    key: RequestKey | None
    """The cache key; None when the request passes."""


def route(policies: PolicySet, req: RequestHead) -> Route:
    """Match, apply the built-in request rules, and key ``req`` (uncached)."""
    policy = policies.match(req.host, req.method, req.path)
    reason = bypass_reason(policy, req)
    return Route(policy, reason, request_key(policy, req) if reason is None else None)


def fields_read(policies: PolicySet) -> frozenset[str]:
    """Every request field ``route`` can depend on, besides method, host and target.

    Kept next to the rules it mirrors: ``req_authorization`` reads Authorization, the bypass
    and key settings read their listed headers, cookie rules read Cookie and the device class
    reads User-Agent.
    """
    names = {"authorization"}
    for policy in (*policies.policies, DEFAULT_POLICY):
        names.update(policy.bypass.headers)
        names.update(policy.key.headers)
        if policy.bypass.cookies or policy.key.cookies:
            names.add("cookie")
        if policy.key.device_class:
            names.add("user-agent")
    return frozenset(names)


class RouteCache:
    """Remembers ``route`` per request shape for one policy set at a time (a reload starts over).

    Bounded: when ``capacity`` shapes are held the memo is emptied and refills with what is hot,
    which keeps the hit path free of any bookkeeping an LRU would add.
    """

    def __init__(self, capacity: int = 16_384) -> None:
        self.capacity = capacity
        self._policies: PolicySet | None = None
        self._fields: frozenset[str] = frozenset()
        self._memo: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], Route] = {}
        self._last: tuple[RequestHead, Route] | None = None
        """The last request routed: a request the synchronous hit path could not answer is routed
        again at once by the full path."""

    def __len__(self) -> int:
        return len(self._memo)

    def route(self, policies: PolicySet, req: RequestHead) -> Route:
        if policies is not self._policies:
            self._policies = policies
            self._fields = fields_read(policies)
            self._memo.clear()
            self._last = None
        last = self._last
        if last is not None and last[0] is req:
            return last[1]
        fields = self._fields
        shape = (req.method, req.host, req.target, tuple([f for f in req.headers if f[0] in fields]))
        found = self._memo.get(shape)
        if found is None:
            if len(self._memo) >= self.capacity:
                self._memo.clear()
            found = self._memo[shape] = route(policies, req)
        self._last = (req, found)
        return found
