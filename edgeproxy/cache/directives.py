"""Cache-Control parsing (RFC 9111 §5.2, RFC 9213 for CDN-Cache-Control).

Parsing is lenient the way §5.2 asks: unknown directives are kept but ignored by the rules,
directive names are case-insensitive, quoted values are unquoted, and a directive that appears
twice with different arguments is recorded as conflicting so the rules can treat it
conservatively (§4.2.1: "either the first occurrence should be used or the response should be
considered stale" — we choose stale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

DELTA_SECONDS_MAX = 2_147_483_648
"""RFC 9111 §1.2.2: larger delta-seconds values are treated as this."""


@dataclass(frozen=True, slots=True)
class Directives:
    """Parsed directives: name -> argument (None when given without one)."""

    values: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    conflicting: frozenset[str] = frozenset()
    """Directives seen more than once with different arguments."""

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def __bool__(self) -> bool:
        return bool(self.values)

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def seconds(self, name: str) -> int | None:
        """A delta-seconds argument (§1.2.2); None when absent.

        An invalid or conflicting value gives 0, which the freshness rules read as "stale":
        the safe interpretation of freshness information we cannot trust.
        """
        if name not in self.values:
            return None
        if name in self.conflicting:
            return 0
        return parse_delta_seconds(self.values[name])

    def field_names(self, name: str) -> tuple[str, ...]:
        """Field names of a qualified directive (``private="set-cookie, x-a"``), lower-cased."""
        arg = self.values.get(name)
        if not arg:
            return ()
        return tuple(part.strip().lower() for part in arg.split(",") if part.strip())


EMPTY = Directives()


def parse_delta_seconds(raw: str | None) -> int:
    """delta-seconds = 1*DIGIT (§1.2.2); invalid → 0 so the response counts as stale."""
    if raw is None or not raw.isdigit() or not raw.isascii():
        return 0
    return min(int(raw), DELTA_SECONDS_MAX)


def parse_cache_control(field_value: str | None) -> Directives:
    """Parse a (combined) Cache-Control or CDN-Cache-Control field value."""
    if not field_value:
        return EMPTY
    values: dict[str, str | None] = {}
    conflicting: set[str] = set()
    for name, arg in _split_directives(field_value):
        if name in values and values[name] != arg:
            conflicting.add(name)
            continue
        values.setdefault(name, arg)
    return Directives(MappingProxyType(values), frozenset(conflicting))


def _split_directives(text: str) -> list[tuple[str, str | None]]:
    """Split on commas outside quoted strings; ``name[=token|quoted-string]``."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        start = i
        while i < n and text[i] not in "=,":
            i += 1
        name = text[start:i].strip().lower()
        arg: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(text[i])
                    i += 1
                i += 1  # closing quote
                arg = "".join(chars)
                while i < n and text[i] != ",":
                    i += 1
            else:
                start = i
                while i < n and text[i] != ",":
                    i += 1
                arg = text[start:i].strip()
        if name:
            out.append((name, arg))
    return out
