"""Plain request/response heads the core reasons about; the shell converts to and from these."""

from __future__ import annotations

from dataclasses import field

from edgeproxy.cache.entry import Headers
from edgeproxy.cache.record import record


def field_index(headers: Headers) -> dict[str, str]:
    """Each field name's combined value: repeated field lines joined with ", " (RFC 9110 §5.3)."""
    index = dict(headers)
    if len(index) == len(headers):
        return index  # no repeated name: most heads, indexed in one C call
    index = {}
    for name, value in headers:
        index[name] = f"{index[name]}, {value}" if name in index else value
    return index


class _IndexedHead:
    """``header()`` through an index built on first use: the rules ask a head for a dozen
    fields (Cache-Control, Date, Age, ETag, Vary, …), and one pass beats a scan per question."""

    # The index's slot lives here, where header() fills it; each @record subclass still declares
    # ``_fields`` as a field so its __init__ sets it to None (dataclass leaves an inherited slot
    # out of the subclass's own __slots__, so an instance has the same slots and size as before).
    __slots__ = ("_fields",)
    headers: Headers
    _fields: dict[str, str] | None

    def header(self, name: str) -> str | None:
        """Combined value of a field (RFC 9110 §5.3), or None when absent."""
        fields = self._fields
        if fields is None:
            fields = self._fields = field_index(self.headers)
        return fields.get(name)


@record
class RequestHead(_IndexedHead):
    """A client request as the cache sees it. ``target`` is the raw path + query, byte-exact."""

    method: str
    host: str
    target: str
    headers: Headers = ()
    _fields: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        _, _, query = self.target.partition("?")
        return query


@record
class ResponseHead(_IndexedHead):
    """An origin response head (body travels separately, possibly streamed)."""

    status: int
    headers: Headers = ()
    _fields: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)
