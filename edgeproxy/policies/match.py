"""Choosing the policy for a request: the highest priority policy whose method, host and path match.

Patterns are compiled once per policy set; the per-request work is a walk over the policies in
priority order doing set lookups, ``startswith``/``endswith`` and, only for real globs and
``re:`` patterns, a regex. Nothing is memoized, so a regex can never be answered for the wrong path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeproxy.policies.builtin import DEFAULT_POLICY
from edgeproxy.policies.model import Policy
from edgeproxy.policies.patterns import (
    HostPattern,
    PathPattern,
    PatternKind,
    compile_host,
    compile_path,
    path_for_match,
)


@dataclass(frozen=True, slots=True)
class MatchReason:
    """Why a policy was chosen, for ``policy explain``."""

    policy: Policy
    host_pattern: str | None
    """The host pattern that matched; None when the built-in default was used."""
    path_pattern: str | None
    method_listed: bool
    """True when the policy lists methods and this one is among them; False when it takes any."""


@dataclass(frozen=True, slots=True)
class _CompiledPolicy:
    policy: Policy
    methods: frozenset[str]
    hosts: tuple[HostPattern, ...]
    paths: tuple[PathPattern, ...]

    @classmethod
    def of(cls, policy: Policy) -> _CompiledPolicy:
        hosts = tuple(compile_host(text) for text in policy.hosts)
        # A '*' host makes the others redundant; keeping it alone saves a loop per request.
        hosts = tuple(h for h in hosts if h.kind is PatternKind.ANY)[:1] or hosts
        return cls(policy, matched_methods(policy), hosts, tuple(compile_path(text) for text in policy.paths))

    def matching(self, host: str, method: str, path: str) -> tuple[HostPattern, PathPattern] | None:
        if self.methods and method not in self.methods:
            return None
        for host_pattern in self.hosts:
            if host_pattern.matches(host):
                for path_pattern in self.paths:
                    if path_pattern.matches(path):
                        return host_pattern, path_pattern
                return None
        return None


@dataclass(frozen=True, slots=True)
class PolicySet:
    """An immutable, validated set of policies; a reload builds a new one and swaps it in whole."""

    version: str
    """Short hash of the policy files' names and contents (``builtin`` with no files)."""
    policies: tuple[Policy, ...]
    """Highest priority first (sorted on construction)."""
    _compiled: tuple[_CompiledPolicy, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Stable sort: policies of equal priority were checked at load not to overlap.
        ordered = tuple(sorted(self.policies, key=lambda p: -p.priority))
        object.__setattr__(self, "policies", ordered)
        object.__setattr__(self, "_compiled", tuple(_CompiledPolicy.of(p) for p in ordered))

    def match(self, host: str, method: str, path: str) -> Policy:
        """The policy for a request; the built-in default when no policy matches."""
        found = self._first(host, method, path)
        return found[0].policy if found is not None else DEFAULT_POLICY

    def explain(self, host: str, method: str, path: str) -> MatchReason:
        """The chosen policy together with the patterns that selected it."""
        found = self._first(host, method, path)
        if found is None:
            return MatchReason(DEFAULT_POLICY, None, None, False)
        compiled, host_pattern, path_pattern = found
        return MatchReason(compiled.policy, host_pattern.text, path_pattern.text, bool(compiled.methods))

    def _first(self, host: str, method: str, path: str) -> tuple[_CompiledPolicy, HostPattern, PathPattern] | None:
        host = host_for_match(host)
        path = path_for_match(path)
        for compiled in self._compiled:
            found = compiled.matching(host, method, path)
            if found is not None:
                return compiled, *found
        return None


def matched_methods(policy: Policy) -> frozenset[str]:
    """The methods a policy applies to (empty: any). Listing GET takes HEAD too: a HEAD is answered
    from a stored GET (RFC 9110 §9.3.2), so it must get the same policy and therefore the same key."""
    methods = frozenset(policy.methods)
    return methods | {"HEAD"} if "GET" in methods else methods


def host_for_match(host: str) -> str:
    """Host patterns see the host lower-case, without a port or a trailing dot."""
    host = host.lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] or host
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        host = name
    return host.rstrip(".")
