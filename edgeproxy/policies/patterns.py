"""Host and path patterns: validated once at load, classified so the per-request test is cheap.

Most operator patterns are an exact path or a ``/prefix/*`` glob; those become a string compare
or ``startswith`` instead of a regex. Only real globs and ``re:`` patterns run a regex.
"""

from __future__ import annotations

import fnmatch
import re
import string
from dataclasses import dataclass
from enum import Enum

_GLOB_META = "*?["
_HOST_LABELS = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")
_IPV6 = re.compile(r"\[[0-9a-f:.]+\]")
_REGEX_META = frozenset(".^$*+?{}[]\\|()")
REGEX_PREFIX = "re:"


class PatternKind(Enum):
    ANY = "any"
    EXACT = "exact"
    PREFIX = "prefix"
    """A path glob whose only wildcard is a trailing ``*``."""
    SUFFIX = "suffix"
    """A host wildcard ``*.example.com``."""
    GLOB = "glob"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A path glob (``*`` spans ``/``; ``?`` one character; ``[a-z]`` a class) or ``re:<regex>``."""

    text: str
    kind: PatternKind
    literal: str
    """The exact path, the prefix, or the literal text every match starts with (glob or regex)."""
    regex: re.Pattern[str] | None = None

    def matches(self, path: str) -> bool:
        kind = self.kind
        if kind is PatternKind.EXACT:
            return path == self.literal
        if kind is PatternKind.PREFIX:
            return path.startswith(self.literal)
        if kind is PatternKind.ANY:
            return True
        assert self.regex is not None
        if kind is PatternKind.GLOB:
            return self.regex.match(path) is not None
        return self.regex.search(path) is not None


@dataclass(frozen=True, slots=True)
class HostPattern:
    """An exact host, ``*.example.com`` (subdomains only, not the apex), or ``*`` (any host)."""

    text: str
    kind: PatternKind
    literal: str
    """The exact host, or the ``.example.com`` suffix of a wildcard."""

    def matches(self, host: str) -> bool:
        """``host`` is lower-case and without its port (see ``match.host_for_match``)."""
        if self.kind is PatternKind.EXACT:
            return host == self.literal
        if self.kind is PatternKind.SUFFIX:
            return host.endswith(self.literal)
        return True


def compile_path(text: str) -> PathPattern:
    """Classify and compile a path pattern; ``ValueError`` names what is wrong with it."""
    if text.startswith(REGEX_PREFIX):
        source = text[len(REGEX_PREFIX):]
        try:
            return PathPattern(text, PatternKind.REGEX, _anchored_prefix(source), re.compile(source))
        except re.error as exc:
            raise ValueError(f"bad regex {source!r}: {exc.msg} at position {exc.pos}") from None
    if not text.startswith(("/", "*")):
        raise ValueError(f"a path glob starts with '/' or '*' (regexes are written re:^/...), got {text!r}")
    if text in {"*", "/*"}:
        return PathPattern(text, PatternKind.ANY if text == "*" else PatternKind.PREFIX, text.rstrip("*"))
    first_meta = min((i for i, c in enumerate(text) if c in _GLOB_META), default=-1)
    if first_meta < 0:
        return PathPattern(text, PatternKind.EXACT, text)
    if not _classes_closed(text):
        raise ValueError(f"unclosed '[' in glob {text!r} (write [[] for a literal bracket)")
    if first_meta == len(text) - 1 and text.endswith("*"):
        return PathPattern(text, PatternKind.PREFIX, text[:-1])
    return PathPattern(text, PatternKind.GLOB, text[:first_meta], re.compile(fnmatch.translate(text)))


def _anchored_prefix(regex: str) -> str:
    """The literal text a ``^``-anchored regex requires at the start (``^/api/v[0-9]`` -> ``/api/v``)."""
    if not regex.startswith("^") or "|" in regex:
        return ""  # unanchored, or an alternative may start differently: no required prefix
    prefix: list[str] = []
    for char in regex[1:]:
        if char in _REGEX_META:
            # A quantifier makes the preceding character optional, so it is not required.
            if char in "?*{" and prefix:
                prefix.pop()
            break
        prefix.append(char)
    return "".join(prefix)


def _classes_closed(glob: str) -> bool:
    """Every ``[`` opens a class closed by a later ``]`` (a ``]`` right after ``[`` is literal)."""
    start = glob.find("[")
    while start >= 0:
        end = glob.find("]", start + 2)
        if end < 0:
            return False
        start = glob.find("[", end + 1)
    return True


def compile_host(text: str) -> HostPattern:
    """Validate a host pattern; hosts are matched lower-case and without a port."""
    host = text.lower()
    if host == "*":
        return HostPattern(text, PatternKind.ANY, "")
    bare = host[2:] if host.startswith("*.") else host
    if ":" in bare and not _IPV6.fullmatch(bare):
        raise ValueError(f"hosts are matched without the port; write {bare.rsplit(':', 1)[0]!r}")
    if _HOST_LABELS.fullmatch(bare) is None and _IPV6.fullmatch(bare) is None:
        raise ValueError(f"not a host name, '*.domain' wildcard or '*': {text!r}")
    if host.startswith("*."):
        return HostPattern(text, PatternKind.SUFFIX, host[1:].rstrip("."))
    return HostPattern(text, PatternKind.EXACT, host.rstrip("."))


def hosts_overlap(a: HostPattern, b: HostPattern) -> bool:
    """Whether some host matches both patterns."""
    if PatternKind.ANY in (a.kind, b.kind):
        return True
    if a.kind is PatternKind.EXACT and b.kind is PatternKind.EXACT:
        return a.literal == b.literal
    if a.kind is PatternKind.EXACT:
        return b.matches(a.literal)
    if b.kind is PatternKind.EXACT:
        return a.matches(b.literal)
    return a.literal.endswith(b.literal) or b.literal.endswith(a.literal)


def paths_may_overlap(a: PathPattern, b: PathPattern) -> bool:
    """Whether some path may match both: exact when either is an exact path, otherwise judged by
    the literal prefixes every match must start with (conservative: may say True wrongly, never False)."""
    if PatternKind.ANY in (a.kind, b.kind):
        return True
    if a.kind is PatternKind.EXACT:
        return b.matches(a.literal)
    if b.kind is PatternKind.EXACT:
        return a.matches(b.literal)
    return a.literal.startswith(b.literal) or b.literal.startswith(a.literal)


_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


def path_for_match(path: str) -> str:
    """The path as an origin will understand it, so a pattern cannot be dodged by spelling.

    Matching (not keying) sees ``/%61ccount`` and ``/x/../account`` as ``/account``: percent-encoded
    unreserved characters are decoded (RFC 3986 §6.2.2.2) and dot segments removed (§5.2.4).
    The cache key keeps the path byte-exact, as the origin receives it.
    """
    if "%" not in path and "/." not in path or not path.startswith("/"):
        return path
    path = _decode_unreserved(path)
    segments = path.split("/")[1:]
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    result = "/" + "/".join(kept)
    if segments[-1] in {".", ".."} and not result.endswith("/"):
        result += "/"
    return result


def _decode_unreserved(path: str) -> str:
    return _PERCENT.sub(lambda m: c if (c := chr(int(m[1], 16))) in _UNRESERVED else m[0], path)
