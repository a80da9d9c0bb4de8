"""The validated, frozen policy objects the proxy consults per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edgeproxy.cache.rules import CacheRules

QueryMode = Literal["all", "include", "exclude", "ignore"]


@dataclass(frozen=True, slots=True)
class OriginSettings:
    url: str
    """Base URL of the origin (scheme://host:port); the upstream URL is this plus the request target."""
    connect_timeout: float = 2.0
    read_timeout: float = 15.0


@dataclass(frozen=True, slots=True)
class KeySettings:
    query: QueryMode = "all"
    """all: the query as sent; include/exclude: only/without ``query_params``; ignore: no query."""
    query_params: tuple[str, ...] = ()
    """Parameter names or globs (``utm_*``) for include/exclude."""
    sort_query: bool = False
    strip_params: tuple[str, ...] = ()
    """Tracking parameters removed from both key and upstream request (e.g. ``utm_*``, ``fbclid``)."""
    headers: tuple[str, ...] = ()
    """Request headers whose values enter the key (names lower-case)."""
    cookies: tuple[str, ...] = ()
    """Request cookies whose values enter the key."""
    device_class: bool = False
    """Add mobile/tablet/desktop (from User-Agent) to the key."""
    lowercase_host: bool = True


@dataclass(frozen=True, slots=True)
class BypassSettings:
    methods: tuple[str, ...] = ()
    """Extra methods that pass (GET/HEAD are the only ones ever looked up anyway)."""
    cookies: tuple[str, ...] = ()
    """A request carrying any of these cookies passes (``*``: any cookie)."""
    headers: tuple[str, ...] = ()
    """A request carrying any of these headers passes."""
    paths: tuple[str, ...] = ()
    """Path globs that always pass."""
    skip_rules: tuple[str, ...] = ()
    """Built-in request rules (``edgeproxy.policies.builtin``) this policy turns off, by name."""


@dataclass(frozen=True, slots=True)
class PersonalizeSettings:
    model: str
    """Model name in the registry."""
    items_path: str = "items"
    """Dotted path of the item list inside the JSON body (``items``, ``data.results``)."""
    deadline_ms: float = 2.0
    max_candidates: int = 500
    user_cookie: str = "uid"
    user_header: str = "x-user-id"


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    hosts: tuple[str, ...] = ("*",)
    """Exact hosts or wildcards (``*.example.com``)."""
    paths: tuple[str, ...] = ("/*",)
    """Globs, or regexes written ``re:^/api/``."""
    methods: tuple[str, ...] = ()
    """Empty: any method."""
    priority: int = 0
    """Higher wins; ties are rejected at load time unless the match sets cannot overlap."""
    origin: OriginSettings | None = None
    """None: the proxy's default ``--origin``."""
    key: KeySettings = field(default_factory=KeySettings)
    rules: CacheRules = field(default_factory=CacheRules)
    bypass: BypassSettings = field(default_factory=BypassSettings)
    personalize: PersonalizeSettings | None = None
    source: str = "<builtin>"
    """``file:line`` the policy was defined at, for explain and error messages."""
