"""``edgeproxy policy check`` and ``edgeproxy policy explain``: the operator's view of the policies."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from edgeproxy.cache.message import RequestHead
from edgeproxy.cache.rules import CacheRules
from edgeproxy.policies.builtin import REQUEST_RULES, RESPONSE_RULES, bypass_reason
from edgeproxy.policies.keying import request_key
from edgeproxy.policies.loader import load_directory, policy_files
from edgeproxy.policies.match import PolicySet
from edgeproxy.policies.model import Policy
from edgeproxy.policies.problems import PolicyError
from edgeproxy.policies.schema import format_duration

DEFAULT_DIRECTORY = Path("policies")
_RULE_WHY = {rule.name: rule.why for rule in REQUEST_RULES}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``policy check`` and ``policy explain`` to the ``edgeproxy`` command line."""
    policy = sub.add_parser("policy", help="validate cache policies or explain how one applies to a URL")
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="{check,explain}")

    check_parser = actions.add_parser("check", help="validate every policy file; exit 1 on any problem")
    check_parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIRECTORY)
    check_parser.set_defaults(func=lambda args: check(args.directory))

    explain_parser = actions.add_parser(
        "explain", help="show the policy, cache key, TTL rules and bypass decision for a URL"
    )
    explain_parser.add_argument("url", help="absolute URL, e.g. http://shop.example/api/items?category=books")
    explain_parser.add_argument("--policies", type=Path, default=DEFAULT_DIRECTORY, metavar="DIR")
    explain_parser.add_argument("--header", action="append", default=[], metavar="K:V", help="repeatable")
    explain_parser.add_argument("--cookie", action="append", default=[], metavar="k=v", help="repeatable")
    explain_parser.add_argument("--method", default="GET")
    explain_parser.set_defaults(func=_run_explain)


def check(directory: Path) -> int:
    """Print every problem as ``file:line: policy 'name': field: reason``; 0 when all is valid."""
    try:
        policies = load_directory(directory)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} in {directory}")
        return 1
    files = len(policy_files(directory))
    print(f"{directory}: {len(policies.policies)} policies in {files} files are valid (version {policies.version})")
    return 0


def request_from_url(
    url: str, method: str = "GET", headers: Sequence[str] = (), cookies: Sequence[str] = ()
) -> RequestHead:
    """A request head for ``url`` with ``K:V`` headers and ``k=v`` cookies; ``ValueError`` on bad input."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"expected an absolute http(s) URL like http://example.com/path, got {url!r}")
    fields = []
    for header in headers:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise ValueError(f"--header expects K:V, got {header!r}")
        fields.append((name.strip().lower(), value.strip()))
    for cookie in cookies:
        if "=" not in cookie:
            raise ValueError(f"--cookie expects name=value, got {cookie!r}")
    if cookies:
        fields.append(("cookie", "; ".join(cookies)))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return RequestHead(method.upper(), parts.netloc.rpartition("@")[2], target, tuple(fields))


def explain(policies: PolicySet, req: RequestHead) -> str:
    """A readable account of what the proxy would do with ``req`` under ``policies``."""
    reason = policies.explain(req.host, req.method, req.path)
    policy = reason.policy
    key = request_key(policy, req)
    lines = [
        f"request      {req.method} {req.host}{req.target}",
        f"policy set   version {policies.version}, {len(policies.policies)} policies",
        f"policy       {policy.name} ({policy.source}, priority {policy.priority})",
    ]
    if reason.host_pattern is None:
        lines.append("  matched    no policy matched: the built-in default applies")
    else:
        method = f"method {req.method} listed" if reason.method_listed else "any method"
        lines.append(f"  matched    host {reason.host_pattern!r}, path {reason.path_pattern!r}, {method}")
    lines.append("cache key")
    lines.extend(f"  {name:<22} {value}" for name, value in key.parts)
    lines.extend(f"  {name:<22} (absent: not in key)" for name in _absent_key_fields(policy, key.parts))
    lines.append(f"  {'hash':<22} {key.hash.hex()}")
    origin = policy.origin.url if policy.origin else "the proxy's --origin"
    lines.append(f"upstream     {key.upstream_target} (to {origin})")
    lines.extend(_ttl_lines(policy.rules))
    passed_by = bypass_reason(policy, req)
    if passed_by is None:
        lines.append("bypass       no: looked up in the cache")
    else:
        lines.append(f"bypass       yes, {passed_by}: {_RULE_WHY[passed_by]}")
    if policy.bypass.skip_rules:
        lines.append(f"  skipped    {', '.join(policy.bypass.skip_rules)}")
    lines.append("response rules")
    lines.extend(f"  {rule.name:<22} {rule.describe(policy)}" for rule in RESPONSE_RULES)
    lines.append(_personalize_line(policy))
    return "\n".join(lines)


def _absent_key_fields(policy: Policy, parts: tuple[tuple[str, str], ...]) -> list[str]:
    present = {name for name, _ in parts}
    wanted = [f"header:{h}" for h in policy.key.headers] + [f"cookie:{c}" for c in policy.key.cookies]
    return [name for name in wanted if name not in present]


def _ttl_lines(rules: CacheRules) -> list[str]:
    def seconds(value: float | None) -> str:
        return format_duration(value) if value is not None else "-"

    disconnected = format_duration(rules.stale_if_disconnected) if rules.stale_if_disconnected else "off"
    return [
        "ttl",
        f"  default    {seconds(rules.default_ttl)} when the origin gives no freshness",
        f"  clamp      min {seconds(rules.min_ttl)}, max {seconds(rules.max_ttl)}",
        f"  force      {seconds(rules.force_ttl)}",
        f"  stale      while-revalidate {seconds(rules.stale_while_revalidate)}, "
        f"if-error {seconds(rules.stale_if_error)} (when the origin gives none)",
        f"             if-disconnected {disconnected} (when the origin cannot be reached)",
    ]


def _personalize_line(policy: Policy) -> str:
    settings = policy.personalize
    if settings is None:
        return "personalize  off"
    return (
        f"personalize  model {settings.model!r}, items at {settings.items_path!r}, "
        f"deadline {settings.deadline_ms:g}ms, up to {settings.max_candidates} candidates, "
        f"user from cookie {settings.user_cookie!r} or header {settings.user_header!r}"
    )


def _run_explain(args: argparse.Namespace) -> int:
    try:
        req = request_from_url(args.url, args.method, args.header, args.cookie)
        policies = load_directory(args.policies)
    except ValueError as exc:
        print(f"edgeproxy policy explain: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        print(f"edgeproxy policy explain: the policies in {args.policies} are invalid:\n{exc}", file=sys.stderr)
        return 1
    print(explain(policies, req))
    return 0
