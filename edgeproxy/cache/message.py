"""Plain request/response heads the core reasons about; the shell converts to and from these."""

from __future__ import annotations

from dataclasses import dataclass

from edgeproxy.cache.entry import Headers


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A client request as the cache sees it. ``target`` is the raw path + query, byte-exact."""

    method: str
    host: str
    target: str
    headers: Headers = ()

    def header(self, name: str) -> str | None:
        """Combined value of a request header (RFC 9110 §5.3), or None when absent."""
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        _, _, query = self.target.partition("?")
        return query


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """An origin response head (body travels separately, possibly streamed)."""

    status: int
    headers: Headers = ()

    def header(self, name: str) -> str | None:
        """Combined value of a response header (RFC 9110 §5.3), or None when absent."""
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else None
