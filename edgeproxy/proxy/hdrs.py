"""Header names and header hygiene for both sides of the proxy."""

from __future__ import annotations

from edgeproxy.cache import spec
from edgeproxy.cache.entry import Headers

# RFC 9110 §7.6.1: connection-specific fields, never forwarded nor stored (one list, the core's).
HOP_BY_HOP = spec.HOP_BY_HOP

# Headers that change what some origins or frameworks answer but are not in the cache key:
# forwarding them lets one client poison the cached response for everyone (unless a policy
# puts them in the key).
POISONING_HEADERS = frozenset(
    {
        "x-forwarded-host", "x-forwarded-scheme", "x-forwarded-server", "x-host", "x-original-url",
        "x-rewrite-url", "x-http-method-override", "x-http-method", "x-method-override",
        "x-original-host", "forwarded", "x-forwarded-port", "x-forwarded-prefix", "x-forwarded-ssl",
        "x-url-scheme", "front-end-https",
    }
)

# Fields we set ourselves from what the client sent (extended, not copied) or re-frame.
PROXY_SET = frozenset({"x-forwarded-for", "x-forwarded-proto", "via", "content-length"})

# RFC 9110 §13.1: client preconditions; dropped on cacheable misses so the cache can fill, then
# answered from the stored response.
CONDITIONALS = frozenset({"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"})

VIA_VALUE = "1.1 edgeproxy"


def strip_hop_by_hop(headers: Headers) -> Headers:
    tokens = spec.connection_options(", ".join([v for k, v in headers if k == "connection"]))
    drop = HOP_BY_HOP | tokens if tokens else HOP_BY_HOP
    return tuple((k, v) for k, v in headers if k not in drop)
