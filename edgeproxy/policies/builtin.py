"""Built-in defaults, written as small named rules an operator can read (like Varnish's builtin.vcl).

Request rules decide whether a request *passes* (goes to the origin, never looked up or stored).
They run in order and the first that fires names the outcome, so logs and ``policy explain`` say
exactly which rule passed a request. A policy turns one off with ``bypass.skip_rules``.
Response rules are carried out by the cache core from ``Policy.rules``; they are listed here so
the defaults are readable in one place and ``policy explain`` can print them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.cookies import request_cookies
from edgeproxy.policies.model import Policy
from edgeproxy.policies.patterns import compile_path, path_for_match
from edgeproxy.policies.schema import format_duration, format_size

DEFAULT_POLICY = Policy(name="builtin-default", source="<builtin>")
"""Used when no policy file matches: cache what RFC 9111 allows, key on the URL as sent."""

LOOKUP_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class RequestRule:
    name: str
    why: str
    passes: Callable[[Policy, RequestHead], bool]
    skippable: bool = True


@dataclass(frozen=True, slots=True)
class ResponseRule:
    name: str
    why: str
    describe: Callable[[Policy], str]
    """What the rule does under a given policy, in words."""


_compiled_path = lru_cache(maxsize=1024)(compile_path)


def _has_bypass_cookie(policy: Policy, req: RequestHead) -> bool:
    wanted = policy.bypass.cookies
    if not wanted:
        return False
    present = request_cookies(req)
    return bool(present) and ("*" in wanted or any(name in present for name in wanted))


def _on_bypass_path(policy: Policy, req: RequestHead) -> bool:
    if not policy.bypass.paths:
        return False
    path = path_for_match(req.path)
    return any(_compiled_path(text).matches(path) for text in policy.bypass.paths)


def _describe_errors(policy: Policy) -> str:
    negative = _negative_ttls(policy)
    if negative:
        return "kept " + ", ".join(negative)
    if policy.rules.cache_errors:
        return "400, 403, 413, 429, 431 and 5xx stored only with explicit freshness"
    return "400, 403, 413, 429, 431 and 5xx not stored (other 4xx by their freshness)"


def _negative_ttls(policy: Policy) -> list[str]:
    """``5xx for 5s, 404 for 10s``: a fully covered class is shown once, with its exceptions."""
    ttls = dict(policy.rules.negative_ttl)
    shown = []
    for first in (400, 500):
        block = [ttls.get(status) for status in range(first, first + 100)]
        if None in block:
            continue
        common = Counter(block).most_common(1)[0][0]
        assert common is not None  # a block holding None was skipped just above
        shown.append(f"{first // 100}xx for {format_duration(common)}")
        ttls = {status: ttl for status, ttl in ttls.items() if status // 100 != first // 100 or ttl != common}
    shown.extend(f"{status} for {format_duration(seconds)}" for status, seconds in sorted(ttls.items()))
    return shown


REQUEST_RULES: tuple[RequestRule, ...] = (
    RequestRule(
        "req_method",
        "only GET and HEAD are answered from cache (RFC 9111 §2); other methods go to the origin",
        lambda policy, req: req.method not in LOOKUP_METHODS,
        skippable=False,
    ),
    RequestRule(
        "req_authorization",
        "a request with Authorization may get a per-user answer (RFC 9111 §3.5)",
        lambda policy, req: req.header("authorization") is not None,
    ),
    RequestRule(
        "req_bypass_method",
        "the policy passes this method (bypass.methods)",
        lambda policy, req: req.method in policy.bypass.methods,
    ),
    RequestRule("req_bypass_path", "the policy passes this path (bypass.paths)", _on_bypass_path),
    RequestRule(
        "req_bypass_header",
        "the request carries a header the policy passes on (bypass.headers)",
        lambda policy, req: bool(policy.bypass.headers)
        and any(name in policy.bypass.headers for name, _ in req.headers),
    ),
    RequestRule(
        "req_bypass_cookie",
        "the request carries a cookie the policy passes on (bypass.cookies)",
        _has_bypass_cookie,
    ),
)

RESPONSE_RULES: tuple[ResponseRule, ...] = (
    ResponseRule(
        "beresp_set_cookie",
        "a response that sets a cookie is usually for one user",
        lambda p: "Set-Cookie removed, then stored" if p.rules.set_cookie == "strip" else "not stored",
    ),
    ResponseRule(
        "beresp_errors",
        "an error stored by mistake would be served to everyone",
        _describe_errors,
    ),
    ResponseRule(
        "beresp_hitmiss",
        "remember an uncacheable key so its requests stop waiting on each other",
        lambda p: f"remembered as uncacheable for {format_duration(p.rules.hit_for_miss)}",
    ),
    ResponseRule(
        "beresp_size",
        "one huge object must not evict the working set",
        lambda p: f"bodies above {format_size(p.rules.max_object_size)} stream through unstored",
    ),
)

_RULES_BY_NAME = {rule.name: rule for rule in REQUEST_RULES}


def bypass_reason(policy: Policy, req: RequestHead) -> str | None:
    """The name of the first rule that passes ``req`` to the origin, or None to look it up."""
    skipped = policy.bypass.skip_rules
    for rule in REQUEST_RULES:
        if rule.name not in skipped and rule.passes(policy, req):
            return rule.name
    return None


def skippable_rule(name: object) -> str:
    """Validate a ``bypass.skip_rules`` entry; ``ValueError`` says which names are allowed."""
    rule = _RULES_BY_NAME.get(name) if isinstance(name, str) else None
    if rule is None:
        names = ", ".join(r.name for r in REQUEST_RULES if r.skippable)
        raise ValueError(f"no built-in request rule {name!r}; rules that can be skipped: {names}")
    if not rule.skippable:
        raise ValueError(f"{rule.name} cannot be skipped: {rule.why}")
    return rule.name
