"""What the cache stores: frozen records that every storage tier can hold and serialize."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from edgeproxy.cache.key import key_url

Headers = tuple[tuple[str, str], ...]
"""Header fields in wire order; names lower-case, repeated names allowed."""

_NAME = re.compile(r"[^:\r\n]+")
_VALUE = re.compile(r"[^\r\n]*")
_FIELD_BLOCK = re.compile(r"(?:[^:\r\n]+: [^\r\n]*\r\n)*")
"""Lines ``name: value`` each ending in CRLF. A name holds no colon and nothing holds CR or LF
(the HTTP parsers reject both), so the first ``": "`` of a line splits it exactly."""


def pack_fields(headers: Headers) -> str:
    """The field block a ``CacheEntry`` stores for ``headers``: one string in wire form instead of a
    tuple of pairs, ~100 bytes less per field in memory. Raises ValueError for a field that
    could not be split back out exactly (an empty name, a colon in a name, CR or LF anywhere)."""
    block = "".join([f"{name}: {value}\r\n" for name, value in headers])
    # One CR and one LF per line, and non-empty names without colons: checked on joined text,
    # since this runs for every object stored.
    names = [name for name, _ in headers]
    lines = len(headers)
    if block.count("\r") != lines or block.count("\n") != lines or ":" in "".join(names) or not all(names):
        bad = next(f for f in headers if _NAME.fullmatch(f[0]) is None or _VALUE.fullmatch(f[1]) is None)
        raise ValueError(f"header field cannot be stored in a field block: {bad[0][:100]!r}: {bad[1][:100]!r}")
    return block


def check_fields(block: str) -> str:
    """``block`` if it is a well-formed field block (see :func:`pack_fields`), else ValueError."""
    if _FIELD_BLOCK.fullmatch(block) is None:
        raise ValueError(f"not a header field block (a name with a colon, or CR/LF in a field?): {block[:200]!r}")
    return block


@dataclass(frozen=True, slots=True, weakref_slot=True)
class CacheEntry:
    """One stored response plus what RFC 9111 needs to judge it later.

    Freshness is decided once, at store time, with the matching policy's clamps applied (as
    Varnish sets ``beresp.ttl``/``grace``), so a lookup never needs the policy again.
    """

    key: str
    """Full key text (method, host, normalized target, policy key parts; a Vary variant's adds the
    selecting headers). Re-checked on every lookup so that a hash collision can never serve the
    wrong object; ``url`` is read from it. Made by ``policies.keying.request_key`` (or
    ``variant_key_text`` of one), so it names a URL; the codec checks keys read from L2."""
    status: int
    fields: str
    """Stored response header fields as one block in wire form (``name: value\r\n`` each, in
    order, names lower-case, repeated names repeated; built by :func:`pack_fields`): hop-by-hop
    fields, Surrogate-Key/Cache-Tag already removed. ``headers`` and ``header`` read it."""
    body: bytes
    request_time: float
    """RFC 9111 §4.2.3 ``request_time``: when we sent the request that produced this response."""
    response_time: float
    """RFC 9111 §4.2.3 ``response_time``: when the response (head) arrived."""
    fresh_for: float
    """Freshness lifetime in seconds (RFC 9111 §4.2.1 after policy clamps)."""
    initial_age: float = 0.0
    """RFC 9111 §4.2.3 ``corrected_initial_age``, fixed at store time; current age adds residence."""
    stale_while_revalidate: float = 0.0
    """RFC 5861 §3 window after ``fresh_for`` in which a stale copy may be served while refreshing."""
    stale_if_error: float = 0.0
    """RFC 5861 §4 window after ``fresh_for`` in which a stale copy may answer an origin error."""
    stale_if_disconnected: float = 0.0
    """RFC 9111 §4.2.4 window after ``fresh_for`` in which a stale copy may answer when the origin
    cannot be reached at all (the policy's ``stale.if_disconnected``)."""
    must_revalidate: bool = False
    """must-revalidate / proxy-revalidate / s-maxage: never served stale without validation."""
    no_cache: bool = False
    """Response ``no-cache`` (unqualified): stored, but validated before every use (§5.2.2.4)."""
    vary: Headers = ()
    """(request header name, normalized value) pairs this variant was selected with (§4.1)."""
    tags: frozenset[str] = frozenset()
    """Surrogate keys from the origin's Surrogate-Key / Cache-Tag, for purge by tag."""
    stored_at: float = 0.0
    """When this process or a peer stored it; purges (bans) issued later than this apply to it."""
    prepared: Any = field(default=None, compare=False, repr=False)
    """Per-process derived data (e.g. personalization item matrix). Never serialized."""

    @property
    def url(self) -> str:
        """``host + path?query`` as keyed: what URL and prefix purges match against (parsed from
        ``key`` on each use, which purges alone need, rather than kept beside it)."""
        return key_url(self.key)

    @property
    def headers(self) -> Headers:
        """The stored fields as (name, value) pairs, parsed from ``fields`` on each use."""
        return tuple((name, value) for name, _, value in (line.partition(": ") for line in self.fields.split("\r\n")[:-1]))

    def header(self, name: str) -> str | None:
        """Combined value of a stored header (RFC 9110 §5.3 list join), or None."""
        fields, prefix = self.fields, f"{name}: "
        if fields.startswith(prefix):
            start = len(prefix)
        else:
            start = fields.find(f"\n{prefix}")
            if start < 0:
                return None  # most questions are about fields an object does not have
            start += 1 + len(prefix)
        end = fields.find("\r\n", start)
        if fields.find(f"\n{prefix}", end) < 0:
            return fields[start:end]  # one line, as most fields have: no split of the block
        return ", ".join([line[len(prefix):] for line in fields.split("\r\n") if line.startswith(prefix)])


@dataclass(frozen=True, slots=True)
class VaryIndex:
    """Stored under a primary key whose response carried Vary: which request headers select a
    variant (§4.1). The variants themselves live under secondary keys."""

    key: str
    header_names: tuple[str, ...]
    stored_at: float = 0.0
    fresh_for: float = 0.0
    """Longest lifetime among the variants, so storage TTL outlives them all."""
    variants: tuple[str, ...] = ()
    """Hex keys of the variants stored so far; capped so one URL cannot flood the cache
    with variants of a header a client controls."""


StoredObject = CacheEntry | VaryIndex
