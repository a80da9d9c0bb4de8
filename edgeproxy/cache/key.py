"""Cache keys: xxh3_128 over explicit, length-prefixed parts.

Parts are length-prefixed so that ("ab", "c") and ("a", "bc") can never hash alike; the full
key text is stored with the entry and compared on lookup, so even a real collision is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable

import xxhash


def key_text(parts: Iterable[str]) -> str:
    """The canonical, unambiguous text of a key: each part as ``<len>:<part>``."""
    return "".join([f"{len(p)}:{p}" for p in parts])


def key_hash(text: str) -> bytes:
    """16-byte xxh3_128 digest of a key text."""
    return xxhash.xxh3_128_digest(text.encode("utf-8", "surrogateescape"))


def variant_key_text(primary: str, vary: Iterable[tuple[str, str]]) -> str:
    """Secondary key text for one Vary variant of a primary key (RFC 9111 §4.1)."""
    return key_text([primary, *(f"{name}={value}" for name, value in vary)])


def key_parts(text: str) -> list[str]:
    """The parts of a key text, in order: the inverse of :func:`key_text`. ValueError for text
    that ``key_text`` cannot have made."""
    parts: list[str] = []
    start = 0
    while start < len(text):
        colon = text.find(":", start)
        length = text[start:colon]
        if colon < 0 or not (length.isascii() and length.isdigit()) or colon + 1 + int(length) > len(text):
            raise ValueError(f"not a cache key text: {text[:200]!r}")
        start = colon + 1 + int(length)
        parts.append(text[colon + 1 : start])
    return parts


def key_url(text: str) -> str:
    """``host + target`` of a request's key text or of one of its Vary variants' (whose first part
    is the request's key text): what URL and prefix purges match. A request key begins with its
    method, host and target parts (``policies.keying.request_key``), so an entry need not keep its
    URL beside its key. ValueError for a key text of any other shape."""
    parts = key_parts(text)
    if parts and parts[0] != "method":
        parts = key_parts(parts[0])
    if len(parts) < 6 or (parts[0], parts[2], parts[4]) != ("method", "host", "target"):
        raise ValueError(f"not a request's cache key text (method, host, target, ...): {text[:200]!r}")
    return parts[3] + parts[5]
