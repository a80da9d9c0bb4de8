"""Vary (RFC 9111 §4.1): which request headers select a stored variant, normalized so that
semantically equal requests share a variant."""

from __future__ import annotations

import re

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
    whitespace". The negotiation headers' tokens are case-insensitive too, a member repeated adds
    nothing, and members are put in descending qvalue order, which is what the qvalues say anyway.
    Members of equal qvalue keep their order: origins break ties by it (RFC 9110 §12.5.4), so
    ``fr, en`` and ``en, fr`` may well be answered in different languages."""
    if value is None:
        return ABSENT
    if name in _LIST_VALUED:
        members = list(dict.fromkeys("".join(p.split()).lower() for p in value.split(",") if p.strip()))
        return ",".join(_by_preference(members))
    return ",".join(" ".join(p.split()) for p in value.split(",") if p.strip())


def selecting_headers(names: tuple[str, ...], req: RequestHead) -> Headers:
    """The (name, normalized value) pairs that pick this request's variant."""
    return tuple((name, normalize(name, req.header(name))) for name in names)


_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
"""RFC 9110 §12.4.2 ``qvalue``."""


def _by_preference(members: list[str]) -> list[str]:
    """Lower-cased, space-free members sorted by descending qvalue (a stable sort); as listed
    when any qvalue is malformed, since its meaning then depends on the origin's parser."""
    if not any(";" in member for member in members):
        return members  # no parameters, so every qvalue is 1: the listed order stands
    weights = []
    for member in members:
        weight = "1"
        for param in member.split(";")[1:]:
            if param.startswith("q="):
                weight = param[2:]
        if _QVALUE.fullmatch(weight) is None:
            return members
        weights.append(float(weight))
    return [m for _, m in sorted(zip(weights, members, strict=True), key=lambda pair: -pair[0])]
