"""Request cookies, read the way browsers send them (RFC 6265 §4.2)."""

from __future__ import annotations

from edgeproxy.cache.message import RequestHead


def request_cookies(req: RequestHead) -> dict[str, str]:
    """Cookie name -> value from every Cookie field (HTTP/2 may split them, RFC 9113 §8.2.3).

    The first occurrence of a name wins: browsers send the most specific cookie first (§5.4).
    """
    cookies: dict[str, str] = {}
    for name, value in req.headers:
        if name == "cookie":
            parse_cookie_header(value, cookies)
    return cookies


def parse_cookie_header(value: str | None, into: dict[str, str] | None = None) -> dict[str, str]:
    """``name=value; …`` pairs of one Cookie field (RFC 6265 §5.4), added to ``into`` where the
    name is not there yet."""
    cookies = {} if into is None else into
    for pair in (value or "").split(";"):
        key, eq, val = pair.partition("=")
        key = key.strip()
        if eq and key:
            cookies.setdefault(key, val.strip())
    return cookies
