"""Cache keys: xxh3_128 over explicit, length-prefixed parts.

Parts are length-prefixed so that ("ab", "c") and ("a", "bc") can never hash alike; the full
key text is stored with the entry and compared on lookup, so even a real collision is harmless.
"""

from __future__ import annotations

from typing import Iterable

import xxhash


def key_text(parts: Iterable[str]) -> str:
    """The canonical, unambiguous text of a key: each part as ``<len>:<part>``."""
    return "".join(f"{len(p)}:{p}" for p in parts)


def key_hash(text: str) -> bytes:
    """16-byte xxh3_128 digest of a key text."""
    return xxhash.xxh3_128_digest(text.encode("utf-8", "surrogateescape"))


def variant_key_text(primary: str, vary: Iterable[tuple[str, str]]) -> str:
    """Secondary key text for one Vary variant of a primary key (RFC 9111 §4.1)."""
    return key_text([primary, *(f"{name}={value}" for name, value in vary)])
