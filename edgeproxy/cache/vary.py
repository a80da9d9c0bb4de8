"""Vary (RFC 9111 §4.1): which request headers select a stored variant, normalized so that
semantically equal requests share a variant."""

from __future__ import annotations

from edgeproxy.cache.entry import Headers
from edgeproxy.cache.message import RequestHead

ABSENT = "\x00"
"""Stands for a header the request did not send. §4.1: an absent field "can only match another
request if it is also absent there", so it must differ from every value, the empty one included;
NUL cannot occur in a field value (RFC 9110 §5.5)."""

_LIST_VALUED = frozenset({"accept-encoding", "accept-language", "accept", "accept-charset"})


def vary_names(vary_value: str | None) -> tuple[str, ...] | None:
    """Sorted, de-duplicated, lower-cased field names; ``None`` for ``Vary: *`` (never matches)."""
    if not vary_value:
        return ()
    names = {part.strip().lower() for part in vary_value.split(",") if part.strip()}
    if "*" in names:
        return None
    return tuple(sorted(names))


def normalize(name: str, value: str | None) -> str:
    """§4.1 allows normalizing "by combining multiple header field lines ... or normalizing
    whitespace"; list-valued negotiation headers are also order- and case-insensitive here."""
    if value is None:
        return ABSENT
    if name in _LIST_VALUED:
        parts = sorted({"".join(p.split()).lower() for p in value.split(",") if p.strip()})
        return ",".join(parts)
    return ",".join(" ".join(p.split()) for p in value.split(",") if p.strip())


def selecting_headers(names: tuple[str, ...], req: RequestHead) -> Headers:
    """The (name, normalized value) pairs that pick this request's variant."""
    return tuple((name, normalize(name, req.header(name))) for name in names)
