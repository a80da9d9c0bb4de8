"""Loading policy files: every problem is reported, each at its file and line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edgeproxy.policies.loader import load_directory
from edgeproxy.policies.problems import PolicyError, Problem
from edgeproxy.policies.schema import format_duration, format_size, parse_duration, parse_size

WritePolicies = Callable[..., Path]


def problems_of(folder: Path) -> list[Problem]:
    with pytest.raises(PolicyError) as raised:
        load_directory(folder)
    return raised.value.problems


def where(problems: list[Problem]) -> list[tuple[str, int, str | None, str]]:
    return [(Path(p.file).name, p.line, p.policy, p.field) for p in problems]


def test_bad_yaml_is_reported_at_its_line(write_policies: WritePolicies) -> None:
    folder = write_policies(a="""
        policies:
          broken:
            match: {paths: [/a
            priority: 1
        """)
    [problem] = problems_of(folder)
    assert (Path(problem.file).name, problem.line, problem.policy, problem.field) == ("a.yaml", 4, None, "-")
    assert problem.reason.startswith("not valid YAML")
    assert str(problem).startswith(f"{problem.file}:4: -: not valid YAML")


def test_all_problems_in_all_files_are_reported_with_exact_lines(write_policies: WritePolicies) -> None:
    folder = write_policies(
        a="""
        policies:
          api:
            priority: 10
            match:
              paths: ["re:^/api/(v1", /ok]
              methods: [GET]
            ttl:
              defualt: 30s
              max: soon
          typed:
            priority: high
            key:
              sort_query: "yes please"
              headers: accept-language
        """,
        b="""
        policies:
          glob:
            priority: 20
            match:
              hosts: ["shop.example:8080"]
              paths: ["/x[ab"]
            origin:
              url: ftp://origin.example
        """,
    )
    problems = problems_of(folder)
    assert where(problems) == [
        ("a.yaml", 5, "api", "match.paths[0]"),
        ("a.yaml", 8, "api", "ttl.defualt"),
        ("a.yaml", 9, "api", "ttl.max"),
        ("a.yaml", 11, "typed", "priority"),
        ("a.yaml", 13, "typed", "key.sort_query"),
        ("b.yaml", 5, "glob", "match.hosts[0]"),
        ("b.yaml", 6, "glob", "match.paths[0]"),
        ("b.yaml", 8, "glob", "origin.url"),
    ]
    reasons = {(Path(p.file).name, p.field): p.reason for p in problems}
    assert reasons["a.yaml", "match.paths[0]"] == "bad regex '^/api/(v1': missing ), unterminated subpattern at position 6"
    assert reasons["b.yaml", "match.paths[0]"].startswith("unclosed '[' in glob '/x[ab'")
    reasons = {field: reason for (_, field), reason in reasons.items()}
    assert reasons["ttl.defualt"] == "unknown key; did you mean 'default'?"
    assert "expected a duration" in reasons["ttl.max"]
    assert reasons["priority"] == "expected a whole number, got 'high'"
    assert "without the port" in reasons["match.hosts[0]"]
    assert "http or https" in reasons["origin.url"]


def test_problem_renders_file_line_policy_field_reason() -> None:
    problem = Problem("policies/a.yaml", 7, "api", "ttl.max", "expected a duration")
    assert str(problem) == "policies/a.yaml:7: policy 'api': ttl.max: expected a duration"


def test_unknown_policy_key_suggests_the_nearest(write_policies: WritePolicies) -> None:
    folder = write_policies(a="""
        policies:
          p:
            prority: 3
            personalise: {model: x}
        """)
    reasons = [(p.line, p.reason) for p in problems_of(folder)]
    assert reasons == [
        (3, "unknown key; did you mean 'priority'?"),
        (4, "unknown key; did you mean 'personalize'?"),
    ]


def test_equal_priorities_that_can_overlap_conflict(write_policies: WritePolicies) -> None:
    folder = write_policies(
        a="""
        policies:
          static:
            priority: 50
            match: {paths: ["/static/*"], methods: [GET, HEAD]}
          images:
            priority: 50
            match: {paths: ["/static/img/*"], methods: [GET]}
          api-v2:
            priority: 50
            match: {paths: ["re:^/api/v2/"]}
          only-post:
            priority: 50
            match: {paths: ["/static/*"], methods: [POST]}
          heads:
            priority: 50
            match: {paths: ["/static/img/x/*"], methods: [HEAD]}
        """,
    )
    problems = problems_of(folder)
    assert where(problems) == [("a.yaml", 5, "images", "priority"), *[("a.yaml", 14, "heads", "priority")] * 2]
    assert "policy 'images'" in problems[2].reason  # GET takes HEAD too, so [GET] and [HEAD] overlap
    assert "equals that of policy 'static'" in problems[0].reason


def test_equal_priorities_on_disjoint_hosts_are_fine(write_policies: WritePolicies) -> None:
    folder = write_policies(a="""
        policies:
          shop:
            priority: 5
            match: {hosts: [shop.example, "*.shop.example"]}
          blog:
            priority: 5
            match: {hosts: [blog.example]}
        """)
    assert [p.name for p in load_directory(folder).policies] == ["shop", "blog"]


def test_duplicate_names_within_and_across_files(write_policies: WritePolicies) -> None:
    folder = write_policies(
        a="""
        policies:
          api:
            priority: 1
          api:
            priority: 2
        """,
        b="""
        policies:
          api:
            priority: 3
        """,
    )
    problems = problems_of(folder)
    assert where(problems) == [("a.yaml", 4, None, "policies.api"), ("b.yaml", 2, "api", "name")]
    assert problems[0].reason == "duplicate key (first at line 2)"
    assert "duplicate policy name (first at" in problems[1].reason


def test_section_rules_are_checked_together(write_policies: WritePolicies) -> None:
    folder = write_policies(a="""
        policies:
          p:
            ttl: {min: 1h, max: 1m, negative: {404: 10s, 2xx: 1s}}
            key: {query: include}
            personalize: {deadline: 2ms}
            bypass: {skip_rules: [req_method]}
        """)
    reasons = {p.field: p.reason for p in problems_of(folder)}
    assert reasons == {
        "ttl.min": "min (3600s) is above max (60s)",
        "ttl.negative.2xx": "expected an error status (400-599) or a class like 5xx, got '2xx'",
        "key.query_params": "query: include needs the parameter names (globs allowed)",
        "personalize.model": "required: the model name in the registry",
        "bypass.skip_rules[0]": reasons["bypass.skip_rules[0]"],
    }
    assert reasons["bypass.skip_rules[0]"].startswith("req_method cannot be skipped")


def test_a_full_policy_maps_onto_the_model(write_policies: WritePolicies) -> None:
    folder = write_policies(a="""
        policies:
          api:
            priority: 7
            match: {hosts: [Shop.Example], paths: [/api/*], methods: [get, HEAD]}
            origin: {url: "http://127.0.0.1:9000/", connect_timeout: 500ms, read_timeout: 1m}
            ttl: {default: 30s, min: 5, max: 1h, force: ~, hit_for_miss: 2s, negative: {5xx: 5s, 503: 1s}}
            stale: {while_revalidate: 30s, if_error: 5m, if_disconnected: 1m}
            store: {max_object_size: 512KB, set_cookie: strip, cache_errors: true}
            key: {query: exclude, query_params: [sid], headers: [Accept-Language], cookies: [currency], device_class: true}
            bypass: {methods: [HEAD], cookies: ["*"], headers: [X-Preview], paths: [/api/me], skip_rules: [req_authorization]}
            personalize: {model: ranker, items_path: data.results, deadline: 3ms, max_candidates: 100}
        """)
    [policy] = load_directory(folder).policies
    assert (policy.hosts, policy.paths, policy.methods, policy.priority) == (("shop.example",), ("/api/*",), ("GET", "HEAD"), 7)
    assert policy.source == f"{folder / 'a.yaml'}:2"
    assert policy.origin is not None
    assert (policy.origin.url, policy.origin.connect_timeout, policy.origin.read_timeout) == ("http://127.0.0.1:9000", 0.5, 60.0)
    rules = policy.rules
    assert (rules.default_ttl, rules.min_ttl, rules.max_ttl, rules.force_ttl, rules.hit_for_miss) == (30.0, 5.0, 3600.0, None, 2.0)
    assert rules.negative_ttl[503] == 1.0 and rules.negative_ttl[500] == 5.0 and 404 not in rules.negative_ttl
    assert (rules.stale_while_revalidate, rules.stale_if_error, rules.stale_if_disconnected) == (30.0, 300.0, 60.0)
    assert (rules.max_object_size, rules.set_cookie, rules.cache_errors) == (512 * 1024, "strip", True)
    assert policy.key.headers == ("accept-language",) and policy.key.cookies == ("currency",)
    assert policy.key.query == "exclude" and policy.key.device_class
    assert policy.bypass.headers == ("x-preview",) and policy.bypass.skip_rules == ("req_authorization",)
    assert policy.personalize is not None
    assert (policy.personalize.items_path, policy.personalize.deadline_ms, policy.personalize.max_candidates) == ("data.results", 3.0, 100)


@pytest.mark.parametrize(("stale", "window"), [("{}", 10.0), ("{if_disconnected: ~}", 10.0), ("{if_disconnected: 0}", 0.0)])
def test_the_disconnected_window_defaults_to_10s_and_0_turns_it_off(
    write_policies: WritePolicies, stale: str, window: float
) -> None:
    folder = write_policies(a=f"policies:\n  p:\n    priority: 1\n    stale: {stale}\n")
    [policy] = load_directory(folder).policies
    assert policy.rules.stale_if_disconnected == window


def test_missing_directory_is_a_problem(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "nowhere")
    assert problem.reason == "policy directory not found"


def test_version_is_a_content_hash(write_policies: WritePolicies) -> None:
    text = "policies:\n  p:\n    priority: 1\n"
    first = load_directory(write_policies(a=text)).version
    assert load_directory(write_policies(a=text)).version == first
    assert load_directory(write_policies(a=text + "    ttl: {default: 1s}\n")).version != first


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), ("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0), ("2ms", 0.002), (1.5, 1.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["-1", "5 weeks", "", True, None, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [(1024, 1024), ("8MB", 8 << 20), ("512KB", 512 << 10), ("1GiB", 1 << 30), ("10b", 10)])
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "8 MiBs", "-1MB", 2.5, False])
def test_bad_sizes(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("seconds", [0, 0.002, 1.5, 30, 90, 300, 3600, 86400, 172800])
def test_formatted_durations_read_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("size", [1, 1000, 1536, 512 << 10, 8 << 20, 1 << 30])
def test_formatted_sizes_read_back(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_shared_settings_merge_into_policies(write_policies: WritePolicies) -> None:
    folder = write_policies(a="""
        x-cached-api: &cached-api
          ttl: {default: 5s}
          store: {set_cookie: strip}
        policies:
          users:
            <<: *cached-api
            priority: 3
            match: {paths: [/users/*]}
          orders:
            <<: *cached-api
            priority: 4
            match: {paths: [/orders/*]}
            ttl: {default: 7s}
        """)
    policies = {p.name: p for p in load_directory(folder).policies}
    assert (policies["users"].rules.default_ttl, policies["users"].rules.set_cookie) == (5.0, "strip")
    assert (policies["orders"].rules.default_ttl, policies["orders"].rules.set_cookie) == (7.0, "strip")


def test_problems_in_merged_settings_point_at_the_shared_text(write_policies: WritePolicies) -> None:
    folder = write_policies(a="""
        x-shared: &shared
          ttl: {default: soon}
        policies:
          p:
            <<: *shared
        """)
    assert where(problems_of(folder)) == [("a.yaml", 2, "p", "ttl.default")]


def test_empty_or_infinite_values_are_rejected(write_policies: WritePolicies) -> None:
    folder = write_policies(a="""
        policies:
          empty:
          forever:
            ttl: {max: .inf}
        """)
    reasons = [(p.line, p.policy, p.reason) for p in problems_of(folder)]
    assert reasons == [
        (2, "empty", "a policy is a mapping with at least 'match' and 'priority'"),
        (4, "forever", "a duration must be between 0s and 100 years, got inf"),
    ]
