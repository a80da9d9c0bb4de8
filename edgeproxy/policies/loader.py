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
from typing import Any, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from edgeproxy.cache.rules import CacheRules
from edgeproxy.policies import builtin
from edgeproxy.policies.match import PolicySet
from edgeproxy.policies.model import (
    BypassSettings,
    KeySettings,
    OriginSettings,
    PersonalizeSettings,
    Policy,
)
from edgeproxy.policies.patterns import compile_host, compile_path, hosts_overlap, paths_may_overlap
from edgeproxy.policies.problems import Problem, PolicyError
from edgeproxy.policies.schema import (
    POLICY_KEYS,
    SECTION_KEYS,
    nearest,
    parse_duration,
    parse_origin_url,
    parse_size,
    parse_statuses,
    parse_token,
)

T = TypeVar("T")
POLICY_SUFFIXES = (".yaml", ".yml")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_QUERY_MODES = ("all", "include", "exclude", "ignore")
_SET_COOKIE_MODES = ("pass", "strip")
_CONSTRUCTOR = SafeConstructor()


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
    files = policy_files(directory)
    texts = [(str(path), path.read_text(encoding="utf-8")) for path in files]
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
    return PolicySet.build(digest.hexdigest()[:12] if texts else "builtin", [item.policy for item in loaded])


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
    top = reader.mapping(root, "-", ("policies",))
    if top is None or "policies" not in top:
        if top is not None:
            reader.problem(root, "-", "a policy file holds one key, 'policies', mapping names to policies")
        return []
    policies = reader.mapping(top["policies"][1], "policies", None)
    loaded = []
    for name_node, body in (policies or {}).values():
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
        self.problems.append(Problem(self.file, node.start_mark.line + 1, self.policy, field, reason))

    def mapping(self, node: Node, field: str, allowed: tuple[str, ...] | None) -> dict[str, tuple[Node, Node]] | None:
        """Key text -> (key node, value node); flags duplicate and unknown keys (``allowed`` None: any)."""
        if isinstance(node, ScalarNode) and node.tag.endswith(":null"):
            return {}
        if not isinstance(node, MappingNode):
            self.problem(node, field, f"expected a mapping of keys, got {_kind(node)}")
            return None
        found: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            where = key.value if field == "-" else f"{field}.{key.value}" if field else key.value
            if not isinstance(key, ScalarNode):
                self.problem(key, field, "keys must be plain names")
            elif key.value in found:
                self.problem(key, where, f"duplicate key (first at line {found[key.value][0].start_mark.line + 1})")
            elif allowed is not None and key.value not in allowed:
                hint = nearest(key.value, allowed)
                also = f"; did you mean {hint!r}?" if hint else f"; valid keys: {', '.join(allowed)}"
                self.problem(key, where, f"unknown key{also}")
            else:
                found[key.value] = (key, value)
        return found

    def scalar(self, node: Node, field: str) -> Any:
        if not isinstance(node, ScalarNode):
            self.problem(node, field, f"expected a single value, got {_kind(node)}")
            return None
        try:
            return _CONSTRUCTOR.construct_object(node)
        except ConstructorError as exc:
            self.problem(node, field, str(exc.problem))
            return None

    def value(self, section: dict[str, tuple[Node, Node]], prefix: str, key: str, parse: Callable[[Any], T]) -> T | None:
        """The parsed value of ``section[key]``; None when absent, null or invalid."""
        if key not in section:
            return None
        node = section[key][1]
        field = f"{prefix}.{key}" if prefix else key
        raw = self.scalar(node, field)
        if raw is None:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            self.problem(node, field, str(exc))
            return None

    def values(self, section: dict[str, tuple[Node, Node]], prefix: str, key: str, parse: Callable[[Any], T]) -> tuple[T, ...] | None:
        """A list value (a single scalar is a one-item list); None when absent."""
        if key not in section:
            return None
        node = section[key][1]
        field = f"{prefix}.{key}"
        items = node.value if isinstance(node, SequenceNode) else [node]
        parsed = []
        for index, item in enumerate(items):
            where = f"{field}[{index}]" if isinstance(node, SequenceNode) else field
            raw = self.scalar(item, where)
            if raw is None:
                continue
            try:
                parsed.append(parse(raw))
            except ValueError as exc:
                self.problem(item, where, str(exc))
        return tuple(parsed)


def _policy(r: _Reader, name: str, node: Node, source: str) -> Policy | None:
    body = r.mapping(node, "", POLICY_KEYS)
    if body is None:
        return None
    sections = {key: _section(r, body, key) for key in SECTION_KEYS if key != "personalize"}
    match = sections["match"]
    hosts = r.values(match, "match", "hosts", lambda v: compile_host(_text(v)).text.lower())
    paths = r.values(match, "match", "paths", lambda v: compile_path(_text(v)).text)
    methods = r.values(match, "match", "methods", _method)
    priority = r.value(body, "", "priority", _integer)
    return Policy(
        name=name,
        hosts=hosts or ("*",),
        paths=paths or ("/*",),
        methods=methods or (),
        priority=priority or 0,
        origin=_origin(r, sections["origin"], body),
        key=_key(r, sections["key"], body),
        rules=_rules(r, sections["ttl"], sections["stale"], sections["store"]),
        bypass=_bypass(r, sections["bypass"]),
        personalize=_personalize(r, body),
        source=source,
    )


def _section(r: _Reader, body: dict[str, tuple[Node, Node]], key: str) -> dict[str, tuple[Node, Node]]:
    if key not in body:
        return {}
    return r.mapping(body[key][1], key, SECTION_KEYS[key]) or {}


def _origin(r: _Reader, section: dict[str, tuple[Node, Node]], body: dict[str, tuple[Node, Node]]) -> OriginSettings | None:
    if not section:
        return None
    url = r.value(section, "origin", "url", parse_origin_url)
    if url is None:
        if "url" not in section:
            r.problem(body["origin"][1], "origin.url", "required when 'origin' is given (or drop 'origin' to use --origin)")
        return None
    defaults = OriginSettings(url)
    return OriginSettings(
        url=url,
        connect_timeout=_or(r.value(section, "origin", "connect_timeout", _positive_duration), defaults.connect_timeout),
        read_timeout=_or(r.value(section, "origin", "read_timeout", _positive_duration), defaults.read_timeout),
    )


def _rules(r: _Reader, ttl: dict[str, tuple[Node, Node]], stale: dict[str, tuple[Node, Node]], store: dict[str, tuple[Node, Node]]) -> CacheRules:
    defaults = CacheRules()
    min_ttl = r.value(ttl, "ttl", "min", parse_duration)
    max_ttl = r.value(ttl, "ttl", "max", parse_duration)
    if min_ttl is not None and max_ttl is not None and min_ttl > max_ttl:
        r.problem(ttl["min"][1], "ttl.min", f"min ({min_ttl:g}s) is above max ({max_ttl:g}s)")
    return CacheRules(
        default_ttl=r.value(ttl, "ttl", "default", parse_duration),
        min_ttl=min_ttl,
        max_ttl=max_ttl,
        force_ttl=r.value(ttl, "ttl", "force", parse_duration),
        negative_ttl=_negative_ttls(r, ttl),
        hit_for_miss=_or(r.value(ttl, "ttl", "hit_for_miss", parse_duration), defaults.hit_for_miss),
        stale_while_revalidate=r.value(stale, "stale", "while_revalidate", parse_duration),
        stale_if_error=r.value(stale, "stale", "if_error", parse_duration),
        max_object_size=_or(r.value(store, "store", "max_object_size", parse_size), defaults.max_object_size),
        set_cookie=_or(r.value(store, "store", "set_cookie", _choice(_SET_COOKIE_MODES)), defaults.set_cookie),
        cache_errors=_or(r.value(store, "store", "cache_errors", _boolean), defaults.cache_errors),
    )


def _negative_ttls(r: _Reader, ttl: dict[str, tuple[Node, Node]]) -> MappingProxyType[int, float]:
    """Status -> TTL; a class (``5xx``) fills every status it covers, an exact status wins over it."""
    if "negative" not in ttl:
        return MappingProxyType({})
    entries = r.mapping(ttl["negative"][1], "ttl.negative", None) or {}
    by_class: dict[int, float] = {}
    exact: dict[int, float] = {}
    for text, (key, _) in entries.items():
        try:
            statuses = parse_statuses(text)
        except ValueError as exc:
            r.problem(key, f"ttl.negative.{text}", str(exc))
            continue
        seconds = r.value(entries, "ttl.negative", text, parse_duration)
        if seconds is not None:
            (exact if len(statuses) == 1 else by_class).update(dict.fromkeys(statuses, seconds))
    return MappingProxyType(by_class | exact)


def _key(r: _Reader, section: dict[str, tuple[Node, Node]], body: dict[str, tuple[Node, Node]]) -> KeySettings:
    defaults = KeySettings()
    mode = _or(r.value(section, "key", "query", _choice(_QUERY_MODES)), defaults.query)
    params = r.values(section, "key", "query_params", _text) or ()
    if mode in {"include", "exclude"} and not params:
        r.problem(body["key"][1], "key.query_params", f"query: {mode} needs the parameter names (globs allowed)")
    if mode in {"all", "ignore"} and params:
        r.problem(section["query_params"][1], "key.query_params", f"has no effect with query: {mode}; use include or exclude")
    return KeySettings(
        query=mode,
        query_params=params,
        sort_query=_or(r.value(section, "key", "sort_query", _boolean), defaults.sort_query),
        strip_params=r.values(section, "key", "strip_params", _text) or (),
        headers=r.values(section, "key", "headers", _header_name) or (),
        cookies=r.values(section, "key", "cookies", lambda v: parse_token(v, "a cookie name")) or (),
        device_class=_or(r.value(section, "key", "device_class", _boolean), defaults.device_class),
        lowercase_host=_or(r.value(section, "key", "lowercase_host", _boolean), defaults.lowercase_host),
    )


def _bypass(r: _Reader, section: dict[str, tuple[Node, Node]]) -> BypassSettings:
    return BypassSettings(
        methods=r.values(section, "bypass", "methods", _method) or (),
        cookies=r.values(section, "bypass", "cookies", lambda v: v if v == "*" else parse_token(v, "a cookie name")) or (),
        headers=r.values(section, "bypass", "headers", _header_name) or (),
        paths=r.values(section, "bypass", "paths", lambda v: compile_path(_text(v)).text) or (),
        skip_rules=r.values(section, "bypass", "skip_rules", builtin.skippable_rule) or (),
    )


def _personalize(r: _Reader, body: dict[str, tuple[Node, Node]]) -> PersonalizeSettings | None:
    if "personalize" not in body:
        return None
    node = body["personalize"][1]
    if isinstance(node, ScalarNode):
        if r.scalar(node, "personalize") is not False:
            r.problem(node, "personalize", "write 'off', or a mapping with at least 'model'")
        return None
    section = r.mapping(node, "personalize", SECTION_KEYS["personalize"])
    if section is None:
        return None
    model = r.value(section, "personalize", "model", _text)
    if model is None:
        if "model" not in section:
            r.problem(node, "personalize.model", "required: the model name in the registry")
        return None
    defaults = PersonalizeSettings(model)
    deadline = r.value(section, "personalize", "deadline", _positive_duration)
    return PersonalizeSettings(
        model=model,
        items_path=_or(r.value(section, "personalize", "items_path", _text), defaults.items_path),
        deadline_ms=deadline * 1000 if deadline is not None else defaults.deadline_ms,
        max_candidates=_or(r.value(section, "personalize", "max_candidates", _positive_integer), defaults.max_candidates),
        user_cookie=_or(r.value(section, "personalize", "user_cookie", lambda v: parse_token(v, "a cookie name")), defaults.user_cookie),
        user_header=_or(r.value(section, "personalize", "user_header", _header_name), defaults.user_header),
    )


def _cross_checks(loaded: list[_Loaded]) -> list[Problem]:
    """Problems between policies: duplicate names, and equal priorities that could both match."""
    problems = []
    seen: dict[str, _Loaded] = {}
    for index, item in enumerate(loaded):
        name = item.policy.name
        if name in seen:
            first = seen[name]
            problems.append(Problem(item.file, item.line, name, "name", f"duplicate policy name (first at {first.policy.source})"))
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
    if a.methods and b.methods and not set(a.methods) & set(b.methods):
        return False
    hosts = any(hosts_overlap(compile_host(x), compile_host(y)) for x in a.hosts for y in b.hosts)
    return hosts and any(paths_may_overlap(compile_path(x), compile_path(y)) for x in a.paths for y in b.paths)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected text, got {value!r}")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _positive_integer(value: Any) -> int:
    if _integer(value) <= 0:
        raise ValueError(f"expected a positive whole number, got {value!r}")
    return value


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds == 0:
        raise ValueError("must be longer than 0s")
    return seconds


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _method(value: Any) -> str:
    return parse_token(value, "a method").upper()


def _header_name(value: Any) -> str:
    return parse_token(value, "a header name").lower()


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return repr(node.value)
