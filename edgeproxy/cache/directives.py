"""Cache-Control parsing (RFC 9111 §5.2), also for the targeted fields CDN-Cache-Control
(RFC 9213) and Surrogate-Control (W3C Edge Architecture 1.0).

Parsing is lenient where §5.2 asks and strict where leniency would mis-read freshness:

* directive names are case-insensitive; unknown directives are kept but ignored by the rules;
* arguments may be tokens or quoted strings (§5.2: "recipients ought to accept both forms");
  commas inside a quoted string do not split directives;
* the grammar ``token [ "=" ( token / quoted-string ) ]`` allows no whitespace around ``=``:
  ``max-age =60`` is not a max-age directive and ``max-age= 60`` has an invalid argument;
* a directive that appears twice with different arguments is recorded as conflicting, and the
  rules read it conservatively (§4.2.1: "either the first occurrence should be used or the
  response should be considered stale" — we choose stale).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

DELTA_SECONDS_MAX = 2_147_483_648
"""RFC 9111 §1.2.2: larger delta-seconds values are treated as this."""

_OWS = " \t"


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
        """Field names of a qualified directive (``private="set-cookie, x-a"``), lower-cased.

        Empty when the directive is unqualified *or* conflicting: for ``private`` and
        ``no-cache`` the unqualified form is the stricter one, so a conflict means "all fields".
        """
        arg = self.values.get(name)
        if not arg or name in self.conflicting:
            return ()
        return tuple(part.strip().lower() for part in arg.split(",") if part.strip())


EMPTY = Directives()


def parse_delta_seconds(raw: str | None) -> int:
    """delta-seconds = 1*DIGIT (§1.2.2), capped at 2^31; invalid → 0 so the response is stale."""
    if raw is None or not raw.isascii() or not raw.isdigit():
        return 0
    return min(int(raw), DELTA_SECONDS_MAX)


def parse_cache_control(field_value: str | None) -> Directives:
    """Parse a (combined) Cache-Control or CDN-Cache-Control field value."""
    if not field_value:
        return EMPTY
    return _parse_cache_control(field_value)


@lru_cache(maxsize=4096)
def _parse_cache_control(field_value: str) -> Directives:
    """Memoized: a busy edge sees the same few values (``public, max-age=300``) on most requests
    and responses, and ``Directives`` is immutable, so one parse serves them all."""
    return _collect(_parse_member(member) for member in split_list(field_value))


def parse_surrogate_control(field_value: str | None, device: str) -> Directives:
    """Surrogate-Control directives that apply to ``device``.

    Edge Architecture 1.0 §3: each directive may end in ``;target``; a targeted directive
    applies only to the surrogate whose device token is ``target``, an untargeted one to all.
    """
    if not field_value:
        return EMPTY
    targeted: list[tuple[str, str | None] | None] = []
    untargeted: list[tuple[str, str | None] | None] = []
    for member in split_list(field_value):
        directive, target = _split_target(member)
        if target is None:
            untargeted.append(_parse_member(directive))
        elif target.lower() == device.lower():
            targeted.append(_parse_member(directive))
    # §2.3: a directive targeted at this device takes precedence over the same one untargeted.
    named = {parsed[0] for parsed in targeted if parsed is not None}
    return _collect(targeted + [p for p in untargeted if p is None or p[0] not in named])


def split_list(text: str) -> list[str]:
    """Members of a comma-separated list (RFC 9110 §5.6.1), commas in quoted strings kept."""
    members: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            members.append(text[start:i])
            start = i + 1
    members.append(text[start:])
    return [m.strip(_OWS) for m in members if m.strip(_OWS)]


def _collect(parsed: Iterable[tuple[str, str | None] | None]) -> Directives:
    values: dict[str, str | None] = {}
    conflicting: set[str] = set()
    for item in parsed:
        if item is None:
            continue
        name, arg = item
        if name in values and values[name] != arg:
            conflicting.add(name)
            continue
        values[name] = arg
    return Directives(MappingProxyType(values), frozenset(conflicting))


def _parse_member(member: str) -> tuple[str, str | None] | None:
    """``name[=token|quoted-string]`` from one list member; None when the name is malformed."""
    name, eq, arg = member.partition("=")
    name = name.lstrip(_OWS).lower()
    if not name or any(ch in name for ch in _OWS + '"'):
        return None  # e.g. "max-age =60": not the directive it looks like
    if not eq:
        return name, None
    if arg.startswith('"'):
        return name, _unquote(arg)
    return name, arg.rstrip(_OWS)


def _unquote(text: str) -> str:
    """The content of a quoted-string (RFC 9110 §5.6.4), backslash escapes resolved; text after
    the closing quote is ignored."""
    chars: list[str] = []
    i = 1
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        chars.append(text[i])
        i += 1
    return "".join(chars)


def _split_target(member: str) -> tuple[str, str | None]:
    """``max-age=60;edge`` -> (``max-age=60``, ``edge``); a ``;`` inside quotes is not a target."""
    quoted = False
    for i in range(len(member) - 1, -1, -1):
        ch = member[i]
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            return member[:i].rstrip(_OWS), member[i + 1 :].strip(_OWS) or None
    return member, None
