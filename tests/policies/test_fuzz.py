"""Whatever an operator writes, loading ends in a PolicySet or a PolicyError, never a crash."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeproxy.policies.loader import load_texts
from edgeproxy.policies.match import PolicySet
from edgeproxy.policies.problems import PolicyError
from edgeproxy.policies.schema import POLICY_KEYS, SECTION_KEYS

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["30s", "5m", "8MB", "/api/*", "re:^/a", "re:(", "*.example.com", "GET", "5xx", "off", "strip"]),
    st.text(max_size=8),
)
keys = st.sampled_from([*POLICY_KEYS, *(k for keys in SECTION_KEYS.values() for k in keys), "hosts", "bogus"])
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4), max_leaves=12
)
documents = st.dictionaries(st.sampled_from(["a", "b", "api"]), st.dictionaries(keys, values, max_size=6), max_size=3)


def outcome(text: str) -> PolicySet | PolicyError:
    try:
        return load_texts([("fuzz.yaml", text)])
    except PolicyError as exc:
        assert exc.problems and all(p.line >= 1 and p.reason for p in exc.problems)
        return exc


@settings(max_examples=150, deadline=None)
@given(documents)
def test_structured_nonsense_is_loaded_or_rejected(policies: dict) -> None:
    outcome(yaml.safe_dump({"policies": policies}))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_is_loaded_or_rejected(text: str) -> None:
    outcome(text)
