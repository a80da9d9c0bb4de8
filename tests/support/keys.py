"""Cache key texts for stored objects built by hand in tests."""

from __future__ import annotations

from edgeproxy.cache.key import key_text


def key_for(url: str, method: str = "GET") -> str:
    """The key text ``request_key`` gives a request for ``url`` (``host/path?query``) under a
    policy with no extra key parts: what a stored entry's ``url`` is read from."""
    slash = url.find("/")
    host, target = (url[:slash], url[slash:]) if slash >= 0 else (url, "/")
    return key_text(["method", method, "host", host, "target", target])
