"""Key texts: unambiguous parts, and the URL a stored entry's key names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.cache.key import key_parts, key_text, key_url, variant_key_text
from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.builtin import DEFAULT_POLICY
from edgeproxy.policies.keying import request_key
from edgeproxy.policies.model import KeySettings, Policy

texts = st.text(max_size=30)
VARIED = Policy("varied", key=KeySettings(headers=("accept-language",), cookies=("currency",), device_class=True))


@given(st.lists(texts, max_size=8))
def test_parts_come_back_from_the_text(parts: list[str]) -> None:
    assert key_parts(key_text(parts)) == parts


@pytest.mark.parametrize("text", ["k", "3:ab", "x:abc", "-1:", "٣:abc", "2:ab3"])
def test_text_that_key_text_cannot_make_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cache key text"):
        key_parts(text)


@given(st.sampled_from([DEFAULT_POLICY, VARIED]), st.text(min_size=1, max_size=20), texts,
       st.lists(st.tuples(texts, texts), max_size=3))
def test_the_url_of_a_request_key_and_of_its_variants_is_the_keyed_url(
    policy: Policy, host: str, path: str, vary: list[tuple[str, str]]
) -> None:
    req = RequestHead("GET", host, "/" + path, (("accept-language", "fr"), ("cookie", "currency=EUR")))
    rk = request_key(policy, req)
    assert key_url(rk.text) == rk.url
    assert key_url(variant_key_text(rk.text, vary)) == rk.url


def test_a_key_without_method_host_and_target_names_no_url() -> None:
    for text in ("", key_text(["host", "a", "target", "/"]), key_text(["method", "GET", "target", "/", "host", "a"])):
        with pytest.raises(ValueError, match="cache key text"):
            key_url(text)
