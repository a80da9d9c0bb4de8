"""Built-in request rules: which rule passes a request, in order, and how a policy skips one."""

from __future__ import annotations

import pytest

from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.builtin import DEFAULT_POLICY, REQUEST_RULES, RESPONSE_RULES, bypass_reason
from edgeproxy.policies.model import BypassSettings, Policy

STRICT = Policy(
    "strict",
    bypass=BypassSettings(methods=("HEAD",), cookies=("session",), headers=("x-preview",), paths=("/account", "/account/*")),
)
ANY_COOKIE = Policy("any-cookie", bypass=BypassSettings(cookies=("*",)))
TRUSTING = Policy("trusting", bypass=BypassSettings(skip_rules=("req_authorization",)))


def req(method: str = "GET", target: str = "/", *headers: tuple[str, str]) -> RequestHead:
    return RequestHead(method, "shop.example", target, headers)


@pytest.mark.parametrize(
    ("policy", "request_", "rule"),
    [
        (DEFAULT_POLICY, req(), None),
        (DEFAULT_POLICY, req("HEAD"), None),
        (DEFAULT_POLICY, req("POST"), "req_method"),
        (DEFAULT_POLICY, req("GET", "/", ("authorization", "Bearer x")), "req_authorization"),
        (DEFAULT_POLICY, req("GET", "/", ("cookie", "session=1")), None),
        (STRICT, req("HEAD"), "req_bypass_method"),
        (STRICT, req("GET", "/account"), "req_bypass_path"),
        (STRICT, req("GET", "/account/orders?page=2"), "req_bypass_path"),
        (STRICT, req("GET", "/%61ccount"), "req_bypass_path"),
        (STRICT, req("GET", "/accounting"), None),
        (STRICT, req("GET", "/", ("x-preview", "1")), "req_bypass_header"),
        (STRICT, req("GET", "/", ("cookie", "theme=dark; session=abc")), "req_bypass_cookie"),
        (STRICT, req("GET", "/", ("cookie", "theme=dark")), None),
        (STRICT, req("DELETE", "/account", ("authorization", "x")), "req_method"),
        (ANY_COOKIE, req("GET", "/", ("cookie", "a=b")), "req_bypass_cookie"),
        (ANY_COOKIE, req("GET", "/"), None),
        (TRUSTING, req("GET", "/", ("authorization", "Bearer x")), None),
        (TRUSTING, req("PUT"), "req_method"),
    ],
)
def test_first_firing_rule_names_the_bypass(policy: Policy, request_: RequestHead, rule: str | None) -> None:
    assert bypass_reason(policy, request_) == rule


def test_every_rule_has_a_name_and_a_reason() -> None:
    rules = [*REQUEST_RULES, *RESPONSE_RULES]
    assert len({rule.name for rule in rules}) == len(rules)
    assert all(rule.why for rule in rules)


def test_response_rules_describe_the_policy() -> None:
    described = {rule.name: rule.describe(DEFAULT_POLICY) for rule in RESPONSE_RULES}
    assert described == {
        "beresp_set_cookie": "not stored",
        "beresp_errors": "400, 403, 413, 429, 431 and 5xx not stored (other 4xx by their freshness)",
        "beresp_hitmiss": "remembered as uncacheable for 10s",
        "beresp_size": "bodies above 8MB stream through unstored",
    }
