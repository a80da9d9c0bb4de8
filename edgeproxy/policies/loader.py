"""Read ``policies/*.yaml`` into validated ``Policy`` objects, reporting every problem with its line.

Files are composed into YAML nodes (not plain dicts) so each value keeps the line it came from;
validation walks the nodes, records a ``Problem`` for each bad value and carries on, and the
whole set is rejected at the end if anything was wrong.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, overload

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from edgeproxy.cache.rules import CacheRules
from edgeproxy.policies import builtin
from edgeproxy.policies.match import PolicySet, matched_methods
from edgeproxy.policies.model import (
    BypassSettings,
    KeySettings,
    OriginSettings,
    PersonalizeSettings,
    Policy,
)
from edgeproxy.policies.patterns import compile_host, compile_path, hosts_overlap, paths_may_overlap
from edgeproxy.policies.problems import PolicyError, Problem
from edgeproxy.policies.schema import (
    POLICY_KEYS,
    SECTION_KEYS,
    nearest,
    one_of,
    parse_boolean,
    parse_cookie_name,
    parse_duration,
    parse_header_name,
    parse_integer,
    parse_method,
    parse_origin_url,
    parse_positive_duration,
    parse_positive_integer,
    parse_size,
    parse_statuses,
    parse_text,
)

T = TypeVar("T")
POLICY_SUFFIXES = (".yaml", ".yml")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CONSTRUCTOR = SafeConstructor()


@dataclass(frozen=True, slots=True)
class _Section:
    """A YAML mapping whose keys were checked; values stay nodes so they keep their lines."""

    field: str
    """Dotted path of this mapping (``ttl``, ``ttl.negative``); empty for a policy's body."""
    node: Node
    entries: dict[str, tuple[Node, Node]]
    """Key text -> (key node, value node)."""

    def where(self, key: str) -> str:
        return f"{self.field}.{key}" if self.field else key

    def __contains__(self, key: str) -> bool:
        return key in self.entries


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A valid policy and where it was written, for the checks that compare policies."""

    policy: Policy
    file: str
    line: int


def policy_files(directory: Path) -> list[Path]:
    """The policy files of a directory, in name order (the order they are read and reported)."""
    return sorted(p for p in directory.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file())


def load_directory(directory: Path) -> PolicySet:
    """Load and validate every policy file in ``directory``; ``PolicyError`` lists all problems."""
    if not directory.is_dir():
        raise PolicyError([Problem(str(directory), 0, None, "-", "policy directory not found")])
    texts = []
    try:
        for path in policy_files(directory):
            texts.append((str(path), path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(str(directory), 0, None, "-", f"cannot read policies: {exc}")]) from None
    return load_texts(texts)


def load_texts(texts: Iterable[tuple[str, str]]) -> PolicySet:
    """Validate policy file contents given as (file name, text) pairs, in that order."""
    texts = list(texts)
    problems: list[Problem] = []
    loaded = [item for name, text in texts for item in _load_file(name, text, problems)]
    problems.extend(_cross_checks(loaded))
    if problems:
        order = {name: index for index, (name, _) in enumerate(texts)}
        raise PolicyError(sorted(problems, key=lambda p: (order.get(p.file, -1), p.line)))
    digest = hashlib.sha256()
    for name, text in texts:
        digest.update(f"{Path(name).name}\0{text}\0".encode())
    return PolicySet(digest.hexdigest()[:12] if texts else "builtin", tuple(item.policy for item in loaded))


def _load_file(file: str, text: str, problems: list[Problem]) -> list[_Loaded]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problems.append(Problem(file, line, None, "-", f"not valid YAML: {getattr(exc, 'problem', None) or exc}"))
        return []
    if root is None:
        return []
    reader = _Reader(file, problems)
    top = reader.section(root, "", ("policies",))
    if top is None or "policies" not in top:
        if top is not None:
            reader.problem(root, "-", "a policy file holds one key, 'policies', mapping names to policies")
        return []
    policies = reader.section(top.entries["policies"][1], "policies", None)
    loaded = []
    for name_node, body in policies.entries.values() if policies else ():
        name = name_node.value
        reader.policy = name
        before = len(problems)
        if _NAME.fullmatch(name) is None:
            reader.problem(name_node, "name", "a policy name is letters, digits, '_', '.', '-'")
        policy = _policy(reader, name, body, f"{file}:{name_node.start_mark.line + 1}")
        if policy is not None and len(problems) == before:
            loaded.append(_Loaded(policy, file, name_node.start_mark.line + 1))
    return loaded


class _Reader:
    """Reads typed values out of YAML nodes, recording a Problem (and returning None) for bad ones."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        self.policy: str | None = None

    def problem(self, node: Node, field: str, reason: str) -> None:
        self.problems.append(Problem(self.file, node.start_mark.line + 1, self.policy, field or "-", reason))

    def section(self, node: Node, field: str, allowed: tuple[str, ...] | None) -> _Section | None:
        """Check a mapping for duplicate and unknown keys (``allowed`` None: any key); null is empty."""
        if isinstance(node, ScalarNode) and node.tag.endswith(":null"):
            return _Section(field, node, {})
        if not isinstance(node, MappingNode):
            self.problem(node, field, f"expected a mapping of keys, got {_kind(node)}")
            return None
        written = {id(key) for key, _ in node.value}
        try:
            # YAML merge keys (<<: *shared) let policies share settings; merged keys come first.
            _CONSTRUCTOR.flatten_mapping(node)
        except ConstructorError as exc:
            self.problem(node, field, f"bad merge (<<): {exc.problem}")
            return None
        section = _Section(field, node, {})
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                self.problem(key, field, "keys must be plain names")
            elif allowed is not None and key.value not in allowed and not _is_extension(field, key.value):
                hint = nearest(key.value, allowed)
                also = f"did you mean {hint!r}?" if hint else f"valid keys: {', '.join(allowed)}"
                self.problem(key, section.where(key.value), f"unknown key; {also}")
            elif key.value in section and id(section.entries[key.value][0]) in written:
                first = section.entries[key.value][0].start_mark.line + 1
                self.problem(key, section.where(key.value), f"duplicate key (first at line {first})")
            else:
                section.entries[key.value] = (key, value)  # a written key overrides a merged one
        return section

    def subsection(self, parent: _Section, key: str) -> _Section:
        """A named section of a policy (empty when absent or not a mapping, the latter reported)."""
        if key not in parent:
            return _Section(key, parent.node, {})
        return self.section(parent.entries[key][1], key, SECTION_KEYS[key]) or _Section(key, parent.node, {})

    def scalar(self, node: Node, field: str) -> Any:
        if not isinstance(node, ScalarNode):
            self.problem(node, field, f"expected a single value, got {_kind(node)}")
            return None
        try:
            return _CONSTRUCTOR.construct_object(node)
        except ConstructorError as exc:
            self.problem(node, field, str(exc.problem))
            return None

    @overload
    def value(self, section: _Section, key: str, parse: Callable[[Any], T]) -> T | None: ...

    @overload
    def value(self, section: _Section, key: str, parse: Callable[[Any], T], default: T) -> T: ...

    def value(self, section: _Section, key: str, parse: Callable[[Any], T], default: T | None = None) -> T | None:
        """The parsed value of ``section[key]``; ``default`` when absent, null (``~``) or invalid."""
        if key not in section:
            return default
        node = section.entries[key][1]
        raw = self.scalar(node, section.where(key))
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.problem(node, section.where(key), str(exc))
            return default

    def values(self, section: _Section, key: str, parse: Callable[[Any], T]) -> tuple[T, ...]:
        """A list value, each item parsed (a single value is a one-item list); () when absent."""
        if key not in section:
            return ()
        node = section.entries[key][1]
        listed = isinstance(node, SequenceNode)
        parsed = []
        for index, item in enumerate(node.value if listed else [node]):
            where = f"{section.where(key)}[{index}]" if listed else section.where(key)
            raw = self.scalar(item, where)
            if raw is None:
                continue
            try:
                parsed.append(parse(raw))
            except ValueError as exc:
                self.problem(item, where, str(exc))
        return tuple(parsed)


def _is_extension(field: str, key: object) -> bool:
    """Top-level ``x-...`` keys hold YAML anchors for merging into policies; they are not policies."""
    return field == "" and isinstance(key, str) and key.startswith("x-")


def _policy(r: _Reader, name: str, node: Node, source: str) -> Policy | None:
    if isinstance(node, ScalarNode):
        r.problem(node, "-", "a policy is a mapping with at least 'match' and 'priority'")
        return None
    body = r.section(node, "", POLICY_KEYS)
    if body is None:
        return None
    match = r.subsection(body, "match")
    return Policy(
        name=name,
        hosts=r.values(match, "hosts", lambda v: compile_host(parse_text(v)).text.lower()) or ("*",),
        paths=r.values(match, "paths", lambda v: compile_path(parse_text(v)).text) or ("/*",),
        methods=r.values(match, "methods", parse_method),
        priority=r.value(body, "priority", parse_integer, 0),
        origin=_origin(r, r.subsection(body, "origin")),
        key=_key(r, r.subsection(body, "key")),
        rules=_rules(r, r.subsection(body, "ttl"), r.subsection(body, "stale"), r.subsection(body, "store")),
        bypass=_bypass(r, r.subsection(body, "bypass")),
        personalize=_personalize(r, body),
        source=source,
    )


def _origin(r: _Reader, section: _Section) -> OriginSettings | None:
    if not section.entries:
        return None
    url = r.value(section, "url", parse_origin_url)
    if url is None:
        if "url" not in section:
            r.problem(section.node, "origin.url", "required with 'origin' (leave 'origin' out to use --origin)")
        return None
    defaults = OriginSettings(url)
    return OriginSettings(
        url=url,
        connect_timeout=r.value(section, "connect_timeout", parse_positive_duration, defaults.connect_timeout),
        read_timeout=r.value(section, "read_timeout", parse_positive_duration, defaults.read_timeout),
    )


def _rules(r: _Reader, ttl: _Section, stale: _Section, store: _Section) -> CacheRules:
    defaults = CacheRules()
    min_ttl = r.value(ttl, "min", parse_duration)
    max_ttl = r.value(ttl, "max", parse_duration)
    if min_ttl is not None and max_ttl is not None and min_ttl > max_ttl:
        r.problem(ttl.entries["min"][1], "ttl.min", f"min ({min_ttl:g}s) is above max ({max_ttl:g}s)")
    return CacheRules(
        default_ttl=r.value(ttl, "default", parse_duration),
        min_ttl=min_ttl,
        max_ttl=max_ttl,
        force_ttl=r.value(ttl, "force", parse_duration),
        negative_ttl=_negative_ttls(r, ttl),
        hit_for_miss=r.value(ttl, "hit_for_miss", parse_duration, defaults.hit_for_miss),
        stale_while_revalidate=r.value(stale, "while_revalidate", parse_duration),
        stale_if_error=r.value(stale, "if_error", parse_duration),
        stale_if_disconnected=r.value(stale, "if_disconnected", parse_duration, defaults.stale_if_disconnected),
        max_object_size=r.value(store, "max_object_size", parse_size, defaults.max_object_size),
        set_cookie=r.value(store, "set_cookie", one_of("pass", "strip"), defaults.set_cookie),
        cache_errors=r.value(store, "cache_errors", parse_boolean, defaults.cache_errors),
    )


def _negative_ttls(r: _Reader, ttl: _Section) -> MappingProxyType[int, float]:
    """Status -> TTL; a class (``5xx``) fills every status it covers, an exact status wins over it."""
    entries = r.section(ttl.entries["negative"][1], "ttl.negative", None) if "negative" in ttl else None
    if entries is None:
        return MappingProxyType({})
    by_class: dict[int, float] = {}
    exact: dict[int, float] = {}
    for text, (key, _) in entries.entries.items():
        try:
            statuses = parse_statuses(text)
        except ValueError as exc:
            r.problem(key, entries.where(text), str(exc))
            continue
        seconds = r.value(entries, text, parse_duration)
        if seconds is not None:
            (exact if len(statuses) == 1 else by_class).update(dict.fromkeys(statuses, seconds))
    return MappingProxyType(by_class | exact)


def _key(r: _Reader, section: _Section) -> KeySettings:
    defaults = KeySettings()
    mode = r.value(section, "query", one_of("all", "include", "exclude", "ignore"), defaults.query)
    params = r.values(section, "query_params", parse_text)
    if mode in {"include", "exclude"} and not params:
        r.problem(section.node, "key.query_params", f"query: {mode} needs the parameter names (globs allowed)")
    if mode in {"all", "ignore"} and params:
        node = section.entries["query_params"][1]
        r.problem(node, "key.query_params", f"has no effect with query: {mode}; use include or exclude")
    return KeySettings(
        query=mode,
        query_params=params,
        sort_query=r.value(section, "sort_query", parse_boolean, defaults.sort_query),
        strip_params=r.values(section, "strip_params", parse_text),
        headers=r.values(section, "headers", parse_header_name),
        cookies=r.values(section, "cookies", parse_cookie_name),
        device_class=r.value(section, "device_class", parse_boolean, defaults.device_class),
        lowercase_host=r.value(section, "lowercase_host", parse_boolean, defaults.lowercase_host),
    )


def _bypass(r: _Reader, section: _Section) -> BypassSettings:
    return BypassSettings(
        methods=r.values(section, "methods", parse_method),
        cookies=r.values(section, "cookies", lambda v: v if v == "*" else parse_cookie_name(v)),
        headers=r.values(section, "headers", parse_header_name),
        paths=r.values(section, "paths", lambda v: compile_path(parse_text(v)).text),
        skip_rules=r.values(section, "skip_rules", builtin.skippable_rule),
    )


def _personalize(r: _Reader, body: _Section) -> PersonalizeSettings | None:
    """``personalize: off`` (or absent) is None; otherwise a mapping that names at least the model."""
    if "personalize" not in body:
        return None
    node = body.entries["personalize"][1]
    if isinstance(node, ScalarNode):
        if r.scalar(node, "personalize") not in (False, None):
            r.problem(node, "personalize", "write 'off', or a mapping with at least 'model'")
        return None
    section = r.subsection(body, "personalize")
    model = r.value(section, "model", parse_text)
    if model is None:
        if "model" not in section:
            r.problem(node, "personalize.model", "required: the model name in the registry")
        return None
    defaults = PersonalizeSettings(model)
    return PersonalizeSettings(
        model=model,
        items_path=r.value(section, "items_path", parse_text, defaults.items_path),
        deadline_ms=r.value(section, "deadline", parse_positive_duration, defaults.deadline_ms / 1000) * 1000,
        max_candidates=r.value(section, "max_candidates", parse_positive_integer, defaults.max_candidates),
        user_cookie=r.value(section, "user_cookie", parse_cookie_name, defaults.user_cookie),
        user_header=r.value(section, "user_header", parse_header_name, defaults.user_header),
    )


def _cross_checks(loaded: list[_Loaded]) -> list[Problem]:
    """Problems between policies: duplicate names, and equal priorities that could both match."""
    problems = []
    seen: dict[str, _Loaded] = {}
    for index, item in enumerate(loaded):
        name = item.policy.name
        if name in seen:
            first = seen[name]
            reason = f"duplicate policy name (first at {first.policy.source})"
            problems.append(Problem(item.file, item.line, name, "name", reason))
        seen.setdefault(name, item)
        for earlier in loaded[:index]:
            if earlier.policy.priority == item.policy.priority and _may_overlap(earlier.policy, item.policy):
                problems.append(Problem(
                    item.file, item.line, name, "priority",
                    f"priority {item.policy.priority} equals that of policy {earlier.policy.name!r} "
                    f"({earlier.policy.source}) and both can match the same request; give one a higher priority",
                ))
    return problems


def _may_overlap(a: Policy, b: Policy) -> bool:
    methods_a, methods_b = matched_methods(a), matched_methods(b)
    if methods_a and methods_b and not methods_a & methods_b:
        return False
    hosts = any(hosts_overlap(compile_host(x), compile_host(y)) for x in a.hosts for y in b.hosts)
    return hosts and any(paths_may_overlap(compile_path(x), compile_path(y)) for x in a.paths for y in b.paths)


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return repr(node.value)
